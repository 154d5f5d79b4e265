// The node's dashboard, served on its API address: `GET /` is one page (its
// script and style beside it, nothing from elsewhere) that reads
// `GET /v1/services` every second and shows it. When the API has a token,
// the page asks for it once in a login form and keeps a session cookie:
// HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
// it) and good for reads only, so a browser never holds a credential that can
// change the node. The cookie carries an HMAC of the token, never the token:
// it says nothing of it, and stops working when the token changes. Basic auth
// was the other choice; browsers send it with every request to the origin,
// writes included, and never forget it until they quit.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS, loginPage } from './dashboard-page.js';

export const DASHBOARD_PATHS: ReadonlySet<string> = new Set([
  '/',
  '/dashboard.js',
  '/dashboard.css',
  '/login',
  '/logout',
]);

const COOKIE = 'harbor_dashboard';
const SESSION_SECONDS = 12 * 3600;
const MAX_FORM_BYTES = 4096;

/** Nothing from another origin, no inline script, no framing: what the page shows stays text. */
const PAGE_HEADERS: http.OutgoingHttpHeaders = {
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export class Dashboard {
  readonly #session: Buffer | undefined;
  /** Served over TLS: the session cookie is marked Secure. */
  readonly #secure: boolean;

  /**
   * `token`: the API's bearer token; undefined when the API has none (the page is open, as the API is).
   * `overTls`: the API serves HTTPS.
   */
  constructor(token: string | undefined, overTls = false) {
    this.#secure = overTls;
    this.#session =
      token === undefined
        ? undefined
        : createHmac('sha256', token).update('harbor-dashboard-session-v1').digest();
  }

  /** A read (GET) carrying a valid session cookie is authorized like a bearer token. */
  allowsRead(req: http.IncomingMessage): boolean {
    if (this.#session === undefined || req.method !== 'GET') return false;
    const value = cookieValue(req.headers.cookie, COOKIE);
    if (value === undefined) return false;
    const given = Buffer.from(value, 'base64url');
    return given.length === this.#session.length && timingSafeEqual(given, this.#session);
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string, body: string): void {
    const answer = this.#answer(req, path, body);
    const headers: http.OutgoingHttpHeaders = { ...PAGE_HEADERS, ...answer.headers };
    if (answer.type !== undefined) {
      headers['content-type'] = answer.type;
      headers['content-length'] = Buffer.byteLength(answer.text ?? '');
    }
    res.writeHead(answer.status, headers);
    res.end(answer.text);
  }

  #answer(req: http.IncomingMessage, path: string, body: string): Answer {
    const method = req.method ?? 'GET';
    const open = this.#session === undefined;
    if (path === '/login' && method === 'POST') {
      const token = body.length > MAX_FORM_BYTES ? undefined : new URLSearchParams(body).get('token');
      if (open) return redirect();
      if (token && this.#matches(token)) {
        return redirect({
          'set-cookie': this.#cookie(this.#session!.toString('base64url'), SESSION_SECONDS),
        });
      }
      return html(401, loginPage('That is not the node’s token.'));
    }
    if (path === '/logout' && method === 'POST') return redirect({ 'set-cookie': this.#cookie('', 0) });
    if (method !== 'GET') {
      const allow = path === '/login' || path === '/logout' ? 'POST' : 'GET';
      return { status: 405, headers: { allow } };
    }
    if (path === '/dashboard.js')
      return { status: 200, type: 'text/javascript; charset=utf-8', text: DASHBOARD_JS };
    if (path === '/dashboard.css')
      return { status: 200, type: 'text/css; charset=utf-8', text: DASHBOARD_CSS };
    if (path !== '/') return redirect();
    return html(200, open || this.allowsRead(req) ? DASHBOARD_HTML : loginPage());
  }

  #matches(token: string): boolean {
    const given = createHmac('sha256', token).update('harbor-dashboard-session-v1').digest();
    return timingSafeEqual(given, this.#session!);
  }

  #cookie(value: string, maxAge: number): string {
    // Over TLS the browser is told never to send it in clear.
    return `${COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${this.#secure ? '; Secure' : ''}`;
  }
}

interface Answer {
  readonly status: number;
  readonly type?: string;
  readonly text?: string;
  readonly headers?: http.OutgoingHttpHeaders;
}

const html = (status: number, text: string): Answer => ({ status, type: 'text/html; charset=utf-8', text });
const redirect = (headers: http.OutgoingHttpHeaders = {}): Answer => ({
  status: 303,
  headers: { location: '/', ...headers },
});

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}
