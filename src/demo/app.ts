// The demo's example app: a plain HTTP server, as a framework would run,
// whose page shows which instance answered and the request headers it
// received (so the X-Forwarded-* the sidecar adds can be seen).
import { createServer, type Server } from 'node:http';

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function createExampleApp(instance: string): Server {
  return createServer((request, response) => {
    const headers = Object.entries(request.headers)
      .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(', ') : value}`)
      .join('\n');
    const wantsText = !(request.headers.accept ?? '').includes('text/html');
    if (wantsText) {
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(
        `instance: ${instance}\n${request.method} ${request.url} HTTP/${request.httpVersion}\n\n${headers}\n`,
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(
      `<!doctype html><title>harbor-sidecar demo</title><h1>Answered by ${escapeHtml(instance)}</h1>` +
        `<p>${escapeHtml(`${request.method} ${request.url}`)}</p><pre>${escapeHtml(headers)}</pre>`,
    );
  });
}
