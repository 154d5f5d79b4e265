// The node's dashboard in a real browser: Debian's Chromium, headless, driven
// by playwright-core (nothing downloaded). Two harbor-nodes share a real
// redis-server (so the page has a cluster to show); the API has a token. The
// page asks for it, shows every service with its instances, the UDP primary
// and its queue, traffic and each node's view, escapes what it shows, and
// picks up a registration made through the API without a reload.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { startClusterNode } from '../cluster/fixtures.js';
import { tagServer, tcpRequest, udpTagServer } from '../forward/fixtures/net.js';
import { HAVE_REDIS, startRedis } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { freeRange } from './fixtures/ranges.js';
import { api } from './fixtures/spawn.js';

const CHROMIUM = ['chromium', 'chromium-browser']
  .map((name) => spawnSync('which', [name], { encoding: 'utf8' }).stdout.trim())
  .find(Boolean);

if (!CHROMIUM) t.plan(0, 'chromium is not installed');
else if (!HAVE_REDIS) t.plan(0, 'redis-server is not installed');

const TOKEN = 'dashboard-test-token';
/** A member name that is markup: the page must show it as text. */
const HOSTILE_MEMBER = '<b/id=pwned>edge-b</b>';

t.test(
  'the dashboard in Chromium: login, every service, UDP primary and queue, live updates, escaping',
  async (t) => {
    const { chromium } = await import('playwright-core');
    const redis = await startRedis(t);
    const range = await freeRange(8);
    const env = { HARBOR_NODE_TOKEN: TOKEN };
    const a = await startClusterNode(t, redis.url, '127.0.0.21', range, ['--member', 'edge-a'], env);
    await startClusterNode(t, redis.url, '127.0.0.22', range, ['--member', HOSTILE_MEMBER], env);
    const call = (method: string, path: string, body?: unknown) => api(a.api, method, path, body, TOKEN);

    const web = (await call('POST', '/v1/services', { name: 'tcp-web' })).json;
    await call('POST', '/v1/services', { name: 'udp-game' });
    await call('POST', '/v1/services', { name: 'both-dns' });
    const [u1, u2] = await Promise.all([udpTagServer(t, 'u1'), udpTagServer(t, 'u2')]);
    await call('PUT', '/v1/services/udp-game/instances/game-1', {
      host: '127.0.0.1',
      port: u1.port,
      ttl: 60,
    });
    await call('PUT', '/v1/services/udp-game/instances/game-2', {
      host: '127.0.0.1',
      port: u2.port,
      ttl: 60,
    });
    const webApp = await tagServer(t, 'web');
    await call('PUT', '/v1/services/tcp-web/instances/web-1', { host: '127.0.0.1', port: webApp.port });
    t.equal(await tcpRequest(web.port, '', '127.0.0.21'), 'web', 'tcp-web serves (traffic to show)');

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    t.teardown(() => browser.close());
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
    const page = await context.newPage();
    const scriptErrors: string[] = [];
    page.on('pageerror', (error) => scriptErrors.push(error.message));

    const first = await page.goto(`${a.api}/`);
    t.equal(first?.headers()['cache-control'], 'no-store', 'never cached');
    t.ok(await page.isVisible('form.login'), 'the token is asked for');
    await page.fill('input[name=token]', 'wrong');
    await page.click('button[type=submit]');
    t.match(await page.textContent('.problem'), /not the node’s token/);
    await page.fill('input[name=token]', TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('section[data-service="udp-game"]');
    const [cookie] = await context.cookies();
    t.match(
      cookie,
      { name: 'harbor_dashboard', httpOnly: true, sameSite: 'Strict' },
      'a session cookie no script reads',
    );
    t.notMatch(cookie?.value ?? '', TOKEN, 'which is not the token');

    const text = (selector: string) => page.locator(selector).innerText();
    t.match(await text('#summary'), /^3 service\(s\), 3 instance\(s\) · store redis:\/\/127\.0\.0\.1:\d+$/);
    const udpRows = await page.locator('section[data-service="udp-game"] tbody tr').allInnerTexts();
    t.match(udpRows[0], /^game-1\s+127\.0\.0\.1:\d+\s+up\s+primary/, 'the primary');
    t.match(udpRows[1], /^game-2\s+127\.0\.0\.1:\d+\s+up\s+queued #1/, 'the queue behind it');
    t.match(await text('section[data-service="both-dns"] .badge'), 'tcp+udp');
    t.match(await text('section[data-service="both-dns"]'), /No instance registered yet/);
    t.match(await text('section[data-service="tcp-web"] .traffic'), /TCP 0 open, 1 total, 0 failed/);
    t.match(await text('section[data-service="tcp-web"] .reached'), new RegExp(`:${web.port}$`));

    // Each node's view, the hostile member name as text.
    await waitFor(
      async () =>
        (await text('section[data-service="tcp-web"] .nodes')).includes(`${HOSTILE_MEMBER}: listening`),
      'both nodes in the cluster view',
    );
    t.match(await text('section[data-service="tcp-web"] .nodes'), /edge-a: listening/);
    t.equal(await page.locator('#pwned').count(), 0, 'markup in a member name stays text');

    // A registration through the API appears without a reload.
    // (Browser-side code as text: the project's types have no DOM.)
    await page.evaluate('window.marker = 1');
    await call('PUT', '/v1/services/both-dns/instances/dns-1', { host: '127.0.0.1', port: webApp.port });
    await page.waitForSelector('section[data-service="both-dns"] tr[data-instance="dns-1"]');
    t.equal(await page.evaluate('window.marker'), 1, 'the same page, not reloaded');
    t.match(
      await text('section[data-service="both-dns"] tr[data-instance="dns-1"]'),
      /dns-1\s+127\.0\.0\.1:\d+\s+up\s+primary/,
    );

    t.ok(
      await page.evaluate('document.documentElement.scrollWidth <= document.documentElement.clientWidth'),
      'no sideways scrolling on a phone',
    );
    const write = await page.evaluate(
      async () => (await fetch('/v1/services', { method: 'POST', body: '{"name":"tcp-x"}' })).status,
    );
    t.equal(write, 401, 'the session cookie cannot change the node');
    t.same(scriptErrors, [], 'no script error');
  },
);
