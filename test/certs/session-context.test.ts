import t from 'tap';
import { sessionIdContextFor } from '../../src/certs/pair-value.js';

t.test('the session id context names the client CA bundle', async (t) => {
  t.equal(sessionIdContextFor(undefined, 'harbor-sidecar'), 'harbor-sidecar', 'no CA: the shared one');
  const a = sessionIdContextFor('-----BEGIN CERTIFICATE-----\nAAAA\n', 'harbor-sidecar');
  const b = sessionIdContextFor(Buffer.from('-----BEGIN CERTIFICATE-----\nBBBB\n'), 'harbor-sidecar');
  t.not(a, b, 'two bundles, two contexts');
  t.not(a, 'harbor-sidecar', 'a CA bundle never shares the context of no CA');
  t.equal(
    sessionIdContextFor('-----BEGIN CERTIFICATE-----\nAAAA\n', 'other'),
    a,
    'the same bundle, the same context',
  );
  t.ok(Buffer.byteLength(a) <= 32 && Buffer.byteLength(b) <= 32, 'within OpenSSL SSL_MAX_SID_CTX_LENGTH');
});
