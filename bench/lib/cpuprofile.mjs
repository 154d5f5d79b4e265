// Reads a V8 .cpuprofile (Profiler.stop's result) and says where the time
// went: top functions by self time, the same by inclusive time for the
// project's own code, and self time grouped by area (TLS, streams, the
// sidecar's modules, GC, native code that V8 cannot see into).
import { fmt, textTable } from './report.mjs';

function shortUrl(url) {
  if (!url) return '';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + 1);
  return url.replace(/^file:\/\//, '');
}

/** An area for a call frame: what a reader of the profile would call it. */
export function areaOf(frame) {
  const { functionName, url } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'native (V8/Node C++/OpenSSL/syscalls, not attributed)';
    if (functionName === '(root)') return 'root';
    return `native: ${functionName || '(anonymous)'}`;
  }
  if (url.includes('/dist/')) return `harbor: ${shortUrl(url)}`;
  if (url.includes('/node_modules/')) return `dependency: ${shortUrl(url).split('/')[1]}`;
  const internal = /^node:internal\/(.+?)(?:\.js)?$/.exec(url) ?? /^node:(.+)$/.exec(url);
  if (internal) {
    const name = internal[1];
    if (/tls|crypto/.test(name)) return 'node: tls';
    if (/stream/.test(name)) return 'node: streams';
    if (/^net|stream_base|tcp/.test(name)) return 'node: net';
    if (/http/.test(name)) return 'node: http';
    if (/timers/.test(name)) return 'node: timers';
    if (/process\/task_queues|async_hooks|events/.test(name)) return 'node: events/ticks';
    return `node: ${name}`;
  }
  return shortUrl(url);
}

export function summariseProfile(profile, { top = 30, usPerOp = null } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totalTicks = profile.samples.length;
  // Sample time per node from timeDeltas (more exact than hitCount x interval).
  const selfUs = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i];
    const delta = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  let totalUs = 0;
  for (const v of selfUs.values()) totalUs += v;
  let idleUs = 0;
  for (const n of profile.nodes) if (n.callFrame.functionName === '(idle)') idleUs += selfUs.get(n.id) ?? 0;
  const busyUs = Math.max(1, totalUs - idleUs);

  const key = (f) => `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
  const selfByFn = new Map();
  const areaSelf = new Map();
  for (const n of profile.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (us === 0 || n.callFrame.functionName === '(idle)') continue;
    selfByFn.set(key(n.callFrame), (selfByFn.get(key(n.callFrame)) ?? 0) + us);
    const area = areaOf(n.callFrame);
    areaSelf.set(area, (areaSelf.get(area) ?? 0) + us);
  }

  // Inclusive time per function (a function counted once per sample path).
  const inclusive = new Map();
  const parentOf = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  for (const [id, us] of selfUs) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parentOf.get(cur)) {
      const k = key(byId.get(cur).callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }

  const pct = (us) => `${((100 * us) / busyUs).toFixed(1)}%`;
  const perOp = (us) => (usPerOp ? fmt((usPerOp * us) / busyUs, 2) : '');
  const lines = [];
  lines.push(
    `\nV8 profile: ${totalTicks} samples over ${fmt(totalUs / 1000)} ms; main thread busy ${((100 * busyUs) / Math.max(1, totalUs)).toFixed(0)}% of it`,
  );
  lines.push(
    '(shares are of the busy main-thread time; us/op spreads the process CPU per operation by those shares)',
  );
  lines.push('\nSelf time by area:');
  lines.push(
    textTable(
      ['area', 'self', 'us/op'],
      [...areaSelf.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 25)
        .map(([a, us]) => [a, pct(us), perOp(us)]),
    ),
  );
  lines.push(`\nTop ${top} functions by self time:`);
  lines.push(
    textTable(
      ['function', 'self', 'us/op'],
      [...selfByFn.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([f, us]) => [f, pct(us), perOp(us)]),
    ),
  );
  lines.push('\nharbor code by inclusive time (with what it calls):');
  lines.push(
    textTable(
      ['function', 'inclusive', 'us/op'],
      [...inclusive.entries()]
        .filter(([f]) => f.includes('dist/'))
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([f, us]) => [f, pct(us), perOp(us)]),
    ),
  );
  return lines.join('\n');
}

// Native symbols of the node binary, by the library they come from (OpenSSL
// and libuv are linked into node, so perf shows them all as "node").
const NATIVE_AREAS = [
  [
    /^(Builtins_|v8::|V8_|Turbofan|Maglev|Heap|Scavenger|MarkCompact|v8_|LoadIC|StoreIC|KeyedLoadIC|RecordWrite)/,
    'V8 (builtins, IC, GC)',
  ],
  [/^(uv_|uv__)/, 'libuv'],
  [/^node::/, 'Node C++ (stream, TLSWrap, buffers)'],
  [
    /^(ssl|SSL_|tls1?_|tls13_|dtls|EVP_|evp_|ossl_|OSSL_|aes|AES_|gcm|CRYPTO_|ERR_|BIO_|bio_|ecp_|EC_|ec_|x25519|X25519|sha|SHA|BN_|bn_|RSA_|rsa_|ECDSA_|ecdsa_|HMAC|hmac|ChaCha|Poly1305|OPENSSL_|ASN1_|asn1_|X509|x509|PEM_|OBJ_|CONF_|RAND_|rand_|drbg|_?x86_64_|KDF|kdf|HKDF|hkdf|tls_|ssl3_|bn_mul|mul_|sqr_|EC_POINT|ecx_|pkey_|PKEY|construct_|WPACKET|PACKET)/,
    'OpenSSL (crypto, records)',
  ],
];

function nativeArea(dso, symbol) {
  if (dso.includes('kernel')) return 'kernel (syscalls, TCP/IP, scheduling)';
  if (dso.startsWith('[JIT]') || symbol.startsWith('JS:') || /^(LazyCompile|Function|Script):/.test(symbol)) {
    return 'JavaScript (JIT code)';
  }
  if (/libssl|libcrypto/.test(dso)) return 'OpenSSL (crypto, records)';
  if (/libc[.-]|ld-linux|libpthread|libm[.-]/.test(dso)) return 'libc (malloc, memcpy)';
  if (dso === 'node' || dso.endsWith('/node')) {
    for (const [re, area] of NATIVE_AREAS) if (re.test(symbol)) return area;
    return 'node binary, other';
  }
  return dso;
}

/** Summarises `perf report --sort dso,sym --stdio -g none` output: share by area and the top symbols. */
export function summarisePerf(text, top = 30) {
  const areas = new Map();
  const rows = [];
  for (const line of text.split('\n')) {
    const match = /^\s*([\d.]+)%\s+(\S+(?: tid \d+)?)\s+\[[.k]\]\s+(.+)$/.exec(line);
    if (!match) continue;
    const share = Number(match[1]);
    const dso = match[2];
    const symbol = match[3].trim();
    const area = nativeArea(dso, symbol);
    areas.set(area, (areas.get(area) ?? 0) + share);
    rows.push([symbol.slice(0, 90), area, `${share.toFixed(2)}%`]);
  }
  const lines = ['\nperf (whole process, every thread): CPU samples by area'];
  lines.push(
    textTable(
      ['area', 'share'],
      [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([a, v]) => [a, `${v.toFixed(1)}%`]),
    ),
  );
  lines.push(`\nperf: top ${top} symbols`);
  lines.push(textTable(['symbol', 'area', 'share'], rows.slice(0, top)));
  return lines.join('\n');
}
