import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric } from '@tradesync/testing';
import { CHROMIUM_ARGS, startDeskGateway, type DeskGateway } from './support/desk.js';

/**
 * The attack a loopback gateway must stop, in a real browser: a page of another site
 * the trader has open (here: another port, so another origin) tries to read the desk
 * and place an order through the gateway on 127.0.0.1. It must get nothing.
 */

let browser: Browser;
let gw: DeskGateway;
let evil: Server;
let evilUrl: string;

/** What the foreign page tries; each attempt reports what it got back. */
const attackPage = (gatewayHttp: string, gatewayWs: string) => `<!doctype html><meta charset="utf-8"><title>free prizes</title><script>
window.results = (async () => {
  const out = {};
  out.ws = await new Promise((resolve) => {
    const socket = new WebSocket(${JSON.stringify(`${gatewayWs}`)});
    const seen = [];
    socket.onopen = () => { seen.push('open'); socket.send(JSON.stringify({ id: 'x', type: 'command', data: { action: 'cancel_order', order_id: 'o-1' } })); };
    socket.onmessage = (m) => seen.push('message ' + String(m.data).slice(0, 40));
    socket.onclose = (e) => resolve({ seen, code: e.code });
  });
  // A "simple" request (text/plain, no preflight) is sent by the browser whatever CORS says.
  out.simplePost = await fetch(${JSON.stringify(`${gatewayHttp}/api/v1/commands`)}, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ action: 'cancel_order', order_id: 'o-1' }) })
    .then((r) => 'sent (' + r.type + ')', (e) => 'failed: ' + e.message);
  // A JSON POST needs a preflight, which must not be granted.
  out.jsonPost = await fetch(${JSON.stringify(`${gatewayHttp}/api/v1/commands`)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'cancel_order', order_id: 'o-1' }) })
    .then((r) => 'read ' + r.status, (e) => 'failed: ' + e.message);
  out.read = await fetch(${JSON.stringify(`${gatewayHttp}/api/state/snapshot?account=demo`)})
    .then((r) => r.text().then((t) => 'read ' + t.slice(0, 40)), (e) => 'failed: ' + e.message);
  return out;
})();
</script>`;

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  gw = await startDeskGateway();
  evil = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(attackPage(gw.url, gw.wsUrl));
  });
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
  evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => evil?.close(resolve));
  await gw?.[Symbol.asyncDispose]();
});

describe('a page of another origin in the trader\'s browser', { timeout: 60_000 }, () => {
  it('can neither open the gateway\'s WebSocket, nor place an order over REST, nor read the desk', async () => {
    const page = await browser.newPage();
    await page.goto(evilUrl);
    const results = await page.evaluate<Record<string, unknown>>('window.results');
    await page.close();

    // Refused at the upgrade: the page never saw the socket open or any message.
    expect(results.ws).toEqual({ seen: [], code: 1006 });
    // The browser sent the simple POST, the gateway refused it: no command ran.
    expect(results.simplePost).toBe('sent (opaque)');
    expect(String(results.jsonPost)).toMatch(/^failed/);
    expect(String(results.read)).toMatch(/^failed/);
    expect(gw.commands.received).toEqual([]);
    expect(await metric(gw.url, 'tradesync_requests_refused_total', { reason: 'origin' })).toBeGreaterThanOrEqual(3);
    expect(await metric(gw.url, 'tradesync_connections')).toBe(0);
  });

  it('while the gateway\'s own dashboard, in the same browser, connects as before', async () => {
    const page = await browser.newPage();
    await page.goto(gw.url);
    await page.locator('.conn-text', { hasText: 'Live' }).waitFor({ timeout: 20_000 });
    await page.close();
  });

  it('cannot come back under a re-bound name (DNS rebinding): the gateway refuses a Host it does not serve', async () => {
    // The browser resolves rebind.example to 127.0.0.1, as a rebinding attack arranges.
    const rebinding = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP rebind.example 127.0.0.1'],
    });
    try {
      const page = await rebinding.newPage();
      const answer = await page.goto(`http://rebind.example:${gw.gateway.port}/api/state/snapshot?account=demo`);
      expect(answer?.status()).toBe(403);
      expect(await page.textContent('body')).toContain('ORIGIN_NOT_ALLOWED');
    } finally {
      await rebinding.close();
    }
  });
});
