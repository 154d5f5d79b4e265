// `harbor-sidecar run --forward ldap-port=HOST:PORT --proxy-protocol v1|v2`:
// a real TCP app behind the sidecar parses the PROXY header it is sent and
// reports the client address it learnt, which must be the address and port
// the client really connected from (a distinctive 127.0.0.x, and ::1).
// Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
import { connect, createServer, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { exited, startSidecar, waitForOutput } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

interface Learnt {
  readonly family: string;
  readonly source: string;
  readonly sourcePort: number;
  readonly destination: string;
  readonly destinationPort: number;
}

/** Parses one PROXY header (v1 or v2) from the front of `data`; undefined while incomplete. */
function parseProxyHeader(data: Buffer): { learnt: Learnt; rest: Buffer } | 'bad' | undefined {
  if (data.length >= 12 && data.subarray(0, 12).equals(V2_SIGNATURE)) {
    if (data.length < 16) return undefined;
    const length = data.readUInt16BE(14);
    if (data.length < 16 + length) return undefined;
    const command = data[12];
    const family = data[13];
    if (command !== 0x21) return 'bad';
    const body = data.subarray(16, 16 + length);
    const rest = data.subarray(16 + length);
    if (family === 0x11) {
      return {
        learnt: {
          family: 'TCP4',
          source: [...body.subarray(0, 4)].join('.'),
          destination: [...body.subarray(4, 8)].join('.'),
          sourcePort: body.readUInt16BE(8),
          destinationPort: body.readUInt16BE(10),
        },
        rest,
      };
    }
    if (family === 0x21) {
      const v6 = (b: Buffer) => {
        const groups: string[] = [];
        for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
        return groups.join(':');
      };
      return {
        learnt: {
          family: 'TCP6',
          source: v6(body.subarray(0, 16)),
          destination: v6(body.subarray(16, 32)),
          sourcePort: body.readUInt16BE(32),
          destinationPort: body.readUInt16BE(34),
        },
        rest,
      };
    }
    return 'bad';
  }
  const end = data.indexOf('\r\n');
  if (end === -1) return data.length > 107 ? 'bad' : undefined;
  const match = /^PROXY (TCP4|TCP6) (\S+) (\S+) (\d+) (\d+)$/.exec(data.subarray(0, end).toString('latin1'));
  if (!match) return 'bad';
  return {
    learnt: {
      family: match[1] ?? '',
      source: match[2] ?? '',
      destination: match[3] ?? '',
      sourcePort: Number(match[4]),
      destinationPort: Number(match[5]),
    },
    rest: data.subarray(end + 2),
  };
}

/**
 * The app: expects a PROXY header first (or none when `expectHeader` is false),
 * answers one JSON line with what it learnt, then echoes everything after it.
 */
async function proxyAwareEchoApp(expectHeader: boolean): Promise<{ server: Server; port: number }> {
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let parsed = !expectHeader;
    if (!expectHeader) {
      socket.write(`${JSON.stringify({ family: 'none', source: socket.remoteAddress })}\n`);
      socket.pipe(socket);
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      if (parsed) {
        socket.write(chunk);
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      const result = parseProxyHeader(buffered);
      if (result === undefined) return;
      if (result === 'bad') {
        socket.end('{"error":"no valid PROXY header"}\n');
        return;
      }
      parsed = true;
      socket.write(`${JSON.stringify(result.learnt)}\n`);
      if (result.rest.length > 0) socket.write(result.rest);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Connects (from `localAddress`), sends `payload`, half-closes, returns the first line and the echo. */
function talk(
  host: string,
  port: number,
  localAddress: string,
  payload: string,
): Promise<{ line: Record<string, unknown>; echo: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress });
    let text = '';
    let localPort = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port}; got ${JSON.stringify(text)}`));
    }, 5000);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      socket.end(payload);
    });
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const nl = text.indexOf('\n');
      if (nl === -1) {
        reject(new Error(`no header line from the app; got ${JSON.stringify(text)}`));
        return;
      }
      resolve({
        line: JSON.parse(text.slice(0, nl)) as Record<string, unknown>,
        echo: text.slice(nl + 1),
        localPort,
      });
    });
  });
}

async function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}

async function startForwardingSidecar(
  t: Test,
  appPort: number,
  proxyProtocol: 'v1' | 'v2' | undefined,
): Promise<number> {
  const intPort = await freePort();
  const args = ['run', '--log-level', 'info', '--forward', `ldap-port=127.0.0.1:${appPort}`];
  if (proxyProtocol) args.push('--proxy-protocol', proxyProtocol);
  const child = startSidecar(args, {
    STACKATO_SERVICES: JSON.stringify({ 'ldap-port': { int_port: intPort, port: 35389, name: 'id-ldap' } }),
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await waitForOutput(child, /"msg":"harbor-sidecar serving"/);
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited(child);
  });
  return intPort;
}

const hasIpv6 = await ipv6Loopback();

for (const version of ['v1', 'v2'] as const) {
  t.test(`--proxy-protocol ${version}: the app learns the real client address and port`, async (t) => {
    const app = await proxyAwareEchoApp(true);
    t.teardown(() => app.server.close());
    const intPort = await startForwardingSidecar(t, app.port, version);

    // A distinctive loopback source address, so a header that names a fixed 127.0.0.1 would fail.
    const first = await talk('127.0.0.1', intPort, '127.0.0.23', 'bind cn=admin\n');
    t.same(first.line, {
      family: 'TCP4',
      source: '127.0.0.23',
      sourcePort: first.localPort,
      destination: '127.0.0.1',
      destinationPort: intPort,
    });
    t.equal(
      first.echo,
      'bind cn=admin\n',
      'the bytes after the header reach the app unchanged and come back',
    );

    const big = 'x'.repeat(256 * 1024);
    const second = await talk('127.0.0.1', intPort, '127.0.0.24', big);
    t.equal(second.line.source, '127.0.0.24');
    t.equal(second.line.sourcePort, second.localPort);
    t.equal(second.echo.length, big.length, 'a 256 KiB payload is echoed whole after the header');

    if (hasIpv6) {
      const v6 = await talk('::1', intPort, '::1', 'over ipv6\n');
      t.same(v6.line, {
        family: 'TCP6',
        source: version === 'v1' ? '::1' : '0:0:0:0:0:0:0:1',
        sourcePort: v6.localPort,
        destination: version === 'v1' ? '::1' : '0:0:0:0:0:0:0:1',
        destinationPort: intPort,
      });
      t.equal(v6.echo, 'over ipv6\n');
    }
  });
}

t.test('without --proxy-protocol the app gets the bytes as sent, no header', async (t) => {
  const app = await proxyAwareEchoApp(false);
  t.teardown(() => app.server.close());
  const intPort = await startForwardingSidecar(t, app.port, undefined);
  const answer = await talk('127.0.0.1', intPort, '127.0.0.23', 'PLAIN\r\n');
  t.equal(answer.line.family, 'none');
  t.equal(answer.line.source, '127.0.0.1', 'the app sees the sidecar as its peer');
  t.equal(answer.echo, 'PLAIN\r\n');
});
