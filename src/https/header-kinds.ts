// The header names the proxy acts on, as small numbers: the parser gives each
// header line its kind without building the name as a string, and every other
// header is K_OTHER and passes through untouched.
/** Header kinds the proxy acts on; every other header is K_OTHER and is never turned into strings. */
export const K_OTHER = 0;
export const K_CONTENT_LENGTH = 1;
export const K_TRANSFER_ENCODING = 2;
export const K_HOST = 3;
export const K_CONNECTION = 4;
export const K_UPGRADE = 5;
export const K_EXPECT = 6;
export const K_KEEP_ALIVE = 7;
export const K_PROXY_CONNECTION = 8;
export const K_TE = 9;
export const K_HTTP2_SETTINGS = 10;
export const K_X_FORWARDED_FOR = 11;
export const K_X_FORWARDED_PROTO = 12;
export const K_X_FORWARDED_HOST = 13;
export const K_X_FORWARDED_PORT = 14;
export const K_FORWARDED = 15;
export const K_X_CLIENT_CERT_SUBJECT = 16;
export const K_TRAILER = 17;
/**
 * A name with an underscore. CGI and WSGI servers (uWSGI, gunicorn) map `-` and `_` alike
 * to `_`, so `Content_Length` would be their CONTENT_LENGTH and `X_Forwarded_For` their
 * HTTP_X_FORWARDED_FOR: such headers are never forwarded (docs/headers.md R16, issue 9).
 */
export const K_UNDERSCORE = 18;
export const K_X_REQUEST_ID = 19;
/**
 * A response's Content-Length repeated with the same length (RFC 9110 section 8.6 lets a
 * recipient keep one; nginx and HAProxy do): dropped from what the client gets, since strict
 * clients (Node's) refuse a repeated one. Never given to a request's header: there it is a 400.
 */
export const K_REPEATED_LENGTH = 20;

const KNOWN: [string, number][] = [
  ['content-length', K_CONTENT_LENGTH],
  ['transfer-encoding', K_TRANSFER_ENCODING],
  ['host', K_HOST],
  ['connection', K_CONNECTION],
  ['upgrade', K_UPGRADE],
  ['expect', K_EXPECT],
  ['keep-alive', K_KEEP_ALIVE],
  ['proxy-connection', K_PROXY_CONNECTION],
  ['te', K_TE],
  ['http2-settings', K_HTTP2_SETTINGS],
  ['x-forwarded-for', K_X_FORWARDED_FOR],
  ['x-forwarded-proto', K_X_FORWARDED_PROTO],
  ['x-forwarded-host', K_X_FORWARDED_HOST],
  ['x-forwarded-port', K_X_FORWARDED_PORT],
  ['forwarded', K_FORWARDED],
  ['x-client-cert-subject', K_X_CLIENT_CERT_SUBJECT],
  ['trailer', K_TRAILER],
  ['x-request-id', K_X_REQUEST_ID],
];
/** Known names by length, for a case-insensitive match without building the name. */
const KNOWN_BY_LENGTH: [string, number][][] = [];
for (const entry of KNOWN) {
  const list = KNOWN_BY_LENGTH[entry[0].length] ?? [];
  list.push(entry);
  KNOWN_BY_LENGTH[entry[0].length] = list;
}

/** The kind of the (token-checked) name `bytes[from, to)`. */
export function kindOf(bytes: Uint8Array, from: number, to: number): number {
  const candidates = KNOWN_BY_LENGTH[to - from];
  if (candidates === undefined) return K_OTHER;
  outer: for (const [lower, kind] of candidates) {
    // Tokens hold no character that |0x20 could confuse with a lower-case letter, digit or '-'.
    for (let i = 0; i < lower.length; i++) {
      if (((bytes[from + i] as number) | 0x20) !== lower.charCodeAt(i)) continue outer;
    }
    return kind;
  }
  return K_OTHER;
}
