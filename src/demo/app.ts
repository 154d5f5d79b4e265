// The demo's example app: a plain HTTP server, as a framework would run. Its
// page says what a person is looking at: which instance answered, through
// which sidecar and node port, why a browser keeps seeing the same instance,
// how to see the round-robin, and the request headers it received (so the
// X-Forwarded-* the sidecar adds can be seen). Text for curl, HTML for a browser.
import { createServer, type Server } from 'node:http';

export interface ExampleAppInfo {
  /** This instance's name (`instance-0 (127.0.0.11)`). */
  readonly instance: string;
  /** The address its sidecar listens on (int_port). */
  readonly sidecar: string;
  /** The node's dashboard URL. */
  readonly dashboard: string;
  /** The certificate file the demo serves, for curl --cacert. */
  readonly cacert: string;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function createExampleApp(info: ExampleAppInfo): Server {
  return createServer((request, response) => {
    const headers = Object.entries(request.headers)
      .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : value}`)
      .join('\n');
    const wantsText = !(request.headers.accept ?? '').includes('text/html');
    if (wantsText) {
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(
        `instance: ${info.instance}\n${request.method} ${request.url} HTTP/${request.httpVersion}\n\n${headers}\n`,
      );
      return;
    }
    const port = String(request.headers['x-forwarded-port'] ?? '');
    const url = `https://localhost:${port}/`;
    const e = escapeHtml;
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>harbor-sidecar demo: ${e(info.instance)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:1em auto;padding:0 1em}pre{background:#f4f4f4;padding:.6em;overflow-x:auto}code{background:#f4f4f4}</style>
</head><body>
<h1>Answered by ${e(info.instance)}</h1>
<p>Your request went: browser &rarr; <b>harbor-node</b> on port ${e(port)} (TLS passes through it untouched)
&rarr; the <b>harbor-sidecar</b> of this instance on ${e(info.sidecar)}, which ended TLS with
<code>certs-example/harbor.crt</code> &rarr; this app's plain HTTP server. Two instances run, each behind
its own sidecar; the node sends each <em>new connection</em> to the next instance in turn.</p>
<h2>Why reloading shows the same instance</h2>
<p>Your browser keeps its connection open and sends every request down it, so they all reach the
instance that connection went to. Round-robin is per connection, as the Harbor node promises.
To see it, make new connections: each <code>curl</code> is one.</p>
<pre>for i in 1 2 3 4; do curl -s --cacert ${e(info.cacert)} ${e(url)} | head -1; done</pre>
<p>The node's <a href="${e(info.dashboard)}">dashboard</a> shows the service, both instances and its
traffic, live.</p>
<h2>The certificate warning</h2>
<p>The demo's certificate is self-signed (for localhost only), so a browser warns before the first
page. To trust it instead, give it to the client: <code>curl --cacert ${e(info.cacert)}</code>, or
import <code>${e(info.cacert)}</code> as a trusted authority in the browser (and remove it afterwards).</p>
<h2>What this app received</h2>
<p>${e(`${request.method} ${request.url}`)}: the <code>x-forwarded-*</code> headers are the sidecar's.</p>
<pre>${e(headers)}</pre>
</body></html>
`);
  });
}
