// The latency histograms a proxy keeps per service (harbor_request_duration_seconds,
// harbor_backend_first_byte_seconds), filled by real requests: HTTP/1.1 and HTTP/2
// clients, a slow backend, a slow reader, a dead backend, a client that leaves.
import * as http2 from 'node:http2';
import t from 'tap';
import {
  LATENCY_BUCKETS,
  type LatencyHistogram,
  requestSecondsOf,
  STATUS_CLASSES,
} from '../../src/stats/index.js';
import { waitFor } from '../helpers/wait.js';
import {
  connectTls,
  deadBackend,
  h2Request,
  httpsRequest,
  startEchoBackend,
  startProxy,
} from './fixtures/helpers.js';

const backend = await startEchoBackend();
t.teardown(() => backend.close());

/** How many of `h`'s durations are at or below `bound` seconds. */
const atOrBelow = (h: LatencyHistogram | undefined, bound: number): number =>
  h?.cumulative()[LATENCY_BUCKETS.indexOf(bound)] ?? 0;

t.test('HTTP/1.1 and HTTP/2: a slow backend shows in both histograms', async (t) => {
  const fx = await startProxy(backend.address);
  t.teardown(() => fx.proxy.close());
  t.equal((await httpsRequest(fx.port, fx.pair, { path: '/slow?ms=1100' })).status, 200);
  t.equal((await h2Request(fx.port, fx.pair, { ':path': '/slow?ms=1100' }))[':status'], 200);
  await waitFor(() => requestSecondsOf(fx.stats, '2xx')?.count === 2, 'both requests counted');
  const requests = requestSecondsOf(fx.stats, '2xx')!;
  const firstBytes = fx.stats.backendSeconds!;
  t.equal(firstBytes.count, 2, 'the backend answered both');
  t.equal(atOrBelow(requests, 1), 0, 'neither request took less than the backend waited');
  t.equal(atOrBelow(firstBytes, 1), 0, 'nor did the backend first byte');
  t.ok(requests.sum >= 2.2 && firstBytes.sum >= 2.2, `sums ${requests.sum} s, ${firstBytes.sum} s`);
  t.ok(requests.sum >= firstBytes.sum, 'a request ends after its first byte');

  // Fast ones land below the slow ones; nothing lands in another class.
  for (let i = 0; i < 5; i++) t.equal((await httpsRequest(fx.port, fx.pair, { path: '/fast' })).status, 200);
  await waitFor(() => requests.count === 7, 'the fast requests counted');
  t.equal(atOrBelow(requests, 1), 5, 'the five fast ones are below a second, the slow ones above');
  t.same(
    STATUS_CLASSES.filter((c) => requestSecondsOf(fx.stats, c) !== undefined),
    ['2xx'],
    'no other class',
  );
});

t.test('a request lasts until its answer is read: a slow reader, not the backend', async (t) => {
  const fx = await startProxy(backend.address);
  t.teardown(() => fx.proxy.close());
  // 8 MiB that the client takes only after 600 ms: the backend's first byte comes at once.
  const session = http2.connect(`https://localhost:${fx.port}`, { ca: fx.pair.cert });
  t.teardown(() => session.destroy());
  const stream = session.request({ ':path': '/bytes?n=8388608' });
  stream.pause();
  await new Promise((resolve) => stream.once('response', resolve));
  await new Promise((resolve) => setTimeout(resolve, 600));
  let received = 0;
  stream.on('data', (c: Buffer) => {
    received += c.length;
  });
  stream.resume();
  await new Promise((resolve) => stream.once('end', resolve));
  t.equal(received, 8 * 1024 * 1024);
  await waitFor(() => requestSecondsOf(fx.stats, '2xx')?.count === 1, 'the download counted');
  const total = requestSecondsOf(fx.stats, '2xx')!.sum;
  const firstByte = fx.stats.backendSeconds!.sum;
  t.ok(total - firstByte >= 0.5, `the download's ${total} s run past its first byte's ${firstByte} s`);
});

t.test("the proxy's own answers: 503 with no backend time, 499 for a client that left", async (t) => {
  const fx = await startProxy(await deadBackend());
  t.teardown(() => fx.proxy.close());
  t.equal((await httpsRequest(fx.port, fx.pair, { path: '/' })).status, 503);
  await waitFor(() => requestSecondsOf(fx.stats, '5xx')?.count === 1, 'the 503 counted');
  t.equal(fx.stats.backendSeconds, undefined, 'no backend answered');

  const slow = await startProxy(backend.address, { pair: fx.pair });
  t.teardown(() => slow.proxy.close());
  const socket = await connectTls(slow.port, slow.pair);
  const seen = backend.requests;
  socket.write('GET /slow?ms=5000 HTTP/1.1\r\nHost: h\r\n\r\n');
  await waitFor(() => backend.requests > seen, 'the request at the backend');
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.destroy();
  await waitFor(() => requestSecondsOf(slow.stats, '4xx')?.count === 1, "the client's leaving counted (499)");
  t.ok(
    requestSecondsOf(slow.stats, '4xx')!.sum >= 0.2,
    `it lasted until it left (${requestSecondsOf(slow.stats, '4xx')!.sum} s)`,
  );
  t.equal(slow.stats.backendSeconds, undefined, 'the backend had not answered');
});
