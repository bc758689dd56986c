/**
 * T-D10 (reliability.md §4 B), the listener's half: what unknown clients can make a listener hold before they have
 * said anything. Before maxPendingHandshakes and maxConnections a listener held every connection it was offered: a
 * slowloris of stalled handshakes is bounded only by handshakeTimeoutMs (10 s) and the process's file descriptors.
 * Now the oldest of too many pending handshakes is closed (so a real client still gets in while they are held), a
 * socket beyond maxConnections is closed as it is accepted, and either is logged once per burst, not per socket.
 * Counts stay modest (tens of sockets, not thousands) so the test runs under a default `ulimit -n` of 1024.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';

import { connect, listen } from '../../src/index.js';
import { Echo } from '../fixtures/echo-service.js';
import { assertCanaryHealthy, assertClosedWith, dosTarget, RssWatch } from '../fixtures/dos.js';
import { helloFrame, sleep, until, within } from '../helpers.js';

interface Stalled {
  socket: Socket;
  closed(): boolean;
}

/** A TCP socket to `url` that sends the first `bytes` of a HELLO and holds (a handshake slowloris); destroyed after the test. */
async function stalledHandshake(t: TestContext, url: string, bytes = 1): Promise<Stalled> {
  const socket = createConnection({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(url)?.[1]) });
  socket.on('error', () => undefined);
  t.after(() => {
    socket.destroy();
  });
  let closed = false;
  socket.once('close', () => (closed = true));
  socket.resume(); // reads (and drops) the server's HELLO, so the server's FIN is seen at once
  await within(once(socket, 'connect'), 3_000, 'slowloris connect');
  socket.write(helloFrame().subarray(0, bytes));
  return { socket, closed: () => closed };
}

function warnings(logs: { level: string; message: string }[], about: string): string[] {
  return logs.filter((l) => l.level === 'warn' && l.message.includes(about)).map((l) => l.message);
}

void describe('listener caps', () => {
  void test('T-D10 handshake slowloris: 60 stalled handshakes against maxPendingHandshakes 50 close the 10 oldest; a real client connects meanwhile', { timeout: 30_000 }, async (t) => {
    const target = await dosTarget(t, { maxPendingHandshakes: 50 });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const stalled: Stalled[] = [];
    for (let i = 0; i < 60; i++) {
      stalled.push(await stalledHandshake(t, target.url));
      await sleep(2); // in order of age
    }
    await until(() => stalled.filter((s) => s.closed()).length >= 10, 3_000, 'the 10 oldest to be closed');
    await sleep(100);
    assert.deepEqual(
      stalled.map((s) => s.closed()),
      stalled.map((_, i) => i < 10),
      'the oldest 10 are closed, the newest 50 still held',
    );
    // the cap is full of stalled handshakes: a real client's makes room by closing the oldest, and completes at once
    const started = performance.now();
    const legit = await within(connect(target.url), 2_000, 'a real client to connect while the cap is held');
    t.after(() => legit.destroy());
    assert.deepEqual(await legit.client(Echo).echo('in'), 'in');
    const connectMs = performance.now() - started;
    assert.ok(connectMs < 1_000, `the real client took ${connectMs.toFixed(0)} ms`);
    await until(() => stalled[10]!.closed(), 1_000, 'the oldest held one to make room');
    assert.equal(stalled.filter((s) => !s.closed()).length, 49);
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(line, /maxPendingHandshakes/);
    assert.equal(warnings(target.logs, 'maxPendingHandshakes').length, 1, `one line for the burst, not one per socket: ${JSON.stringify(target.logs)}`);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 handshake slowloris');
    rss.assertUnder(32, 'T-D10 handshake slowloris'); // 60 sockets and their sessions
  });

  void test('T-D10 connection flood: beyond maxConnections a new socket is closed as it is accepted, logged once; freed room takes new clients', { timeout: 30_000 }, async (t) => {
    const target = await dosTarget(t, { maxConnections: 20 }); // the canary holds one
    const rss = new RssWatch();
    const canary = target.startCanary();
    const held: Stalled[] = [];
    for (let i = 0; i < 40; i++) held.push(await stalledHandshake(t, target.url, 0));
    await until(() => held.filter((s) => s.closed()).length >= 21, 3_000, 'the sockets beyond the cap to be closed');
    await sleep(100);
    assert.equal(held.filter((s) => !s.closed()).length, 19, 'the listener holds 20 sockets with the canary');
    assert.deepEqual(held.slice(0, 19).map((s) => s.closed()), new Array<boolean>(19).fill(false), 'the first 19 are the ones held');
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(line, /maxConnections/);
    assert.equal(warnings(target.logs, 'maxConnections').length, 1, `one line for the burst: ${JSON.stringify(target.logs)}`);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 connection flood');
    rss.assertUnder(32, 'T-D10 connection flood');
    for (const s of held) s.socket.destroy();
    const after = await within(
      (async () => {
        for (;;) {
          try {
            return await connect(target.url, { connectTimeoutMs: 500 });
          } catch {
            await sleep(50); // the listener's sockets are still closing
          }
        }
      })(),
      5_000,
      'a client to connect once the flood is gone',
    );
    t.after(() => after.destroy());
    assert.deepEqual(await after.client(Echo).echo('after'), 'after');
  });

  void test('maxConnections and maxPendingHandshakes: integers from 1, or Infinity; anything else rejects listen() with a RangeError', async () => {
    for (const name of ['maxConnections', 'maxPendingHandshakes']) {
      for (const bad of [0, -1, 1.5, NaN, '10', 2 ** 31]) {
        await assert.rejects(listen('tcp://127.0.0.1:0', { [name]: bad }), (error: Error) => error instanceof RangeError && error.message.startsWith(`${name} must be an integer`), `${name}: ${String(bad)}`);
      }
      const server = await listen('tcp://127.0.0.1:0', { [name]: Infinity });
      await server.close();
    }
  });
});
