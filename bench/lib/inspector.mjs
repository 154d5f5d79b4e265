// A minimal Chrome DevTools Protocol client over the inspector WebSocket of a
// process started with --inspect=127.0.0.1:PORT: enough to start and stop the
// V8 CPU profiler around a measured window (ws is a dev dependency).
import WebSocket from 'ws';
import { sleep } from './proc.mjs';

/** A minimal Chrome DevTools Protocol session over the inspector WebSocket. */
export async function inspectorSession(inspectPort) {
  let targets = null;
  for (let i = 0; i < 50 && !targets; i++) {
    try {
      targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json();
    } catch {
      await sleep(100);
    }
  }
  if (!targets?.[0]) throw new Error('inspector did not answer');
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map();
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString());
    const waiter = pending.get(message.id);
    if (waiter) {
      pending.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    }
  });
  return {
    send(method, params = {}) {
      const id = nextId++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
    close: () => ws.close(),
  };
}
