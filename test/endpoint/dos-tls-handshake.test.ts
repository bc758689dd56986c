/**
 * T-D10 (reliability.md §4 B) over TLS: TLS handshakes that never finish. A tls:// listener hands each accepted
 * connection to its session at once, so the session's handshakeTimeoutMs bounds the TLS handshake and the HELLO
 * together, and maxPendingHandshakes counts connections still in their TLS handshake. Raw TCP sockets that send
 * nothing, half a ClientHello, or half a ClientHello and then a reset are each closed within handshakeTimeoutMs, with
 * nothing escaping as an uncaught exception; beyond the cap the oldest stalled ones are closed so a real TLS client
 * gets in at once. Modest counts (tens of sockets) keep it under a default `ulimit -n` of 1024.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, test, type TestContext } from 'node:test';

import { connect } from '../../src/index.js';
import { assertCanaryHealthy, assertClosedWith, dosTarget, RssWatch } from '../fixtures/dos.js';
import { Echo } from '../fixtures/echo-service.js';
import { clientTls, serverTls } from '../fixtures/tls.js';
import { sleep, until, within } from '../helpers.js';

/** The first flight of a real TLS client (its ClientHello), captured off a plain socket that never answers. */
async function realClientHello(): Promise<Buffer> {
  const first = new Promise<Buffer>((resolve) => {
    const server = createServer((socket) => {
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address() as { port: number };
      const client = tlsConnect({ host: '127.0.0.1', port: address.port, servername: 'localhost', ...clientTls() });
      client.on('error', () => undefined);
    });
  });
  return within(first, 3_000, 'a ClientHello to capture');
}

interface Stalled {
  socket: Socket;
  openedAt: number;
  closedAt: number | undefined;
}

/** A raw TCP socket to `url` that sends `bytes` (maybe none) and holds; destroyed after the test. */
async function stalledTls(t: TestContext, url: string, bytes: Uint8Array): Promise<Stalled> {
  const socket = createConnection({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(url)?.[1]) });
  socket.on('error', () => undefined);
  t.after(() => {
    socket.destroy();
  });
  const stalled: Stalled = { socket, openedAt: 0, closedAt: undefined };
  socket.once('close', () => (stalled.closedAt = performance.now()));
  socket.resume(); // reads (and drops) whatever the server sends, so its FIN is seen at once
  await within(once(socket, 'connect'), 3_000, 'stalled socket connect');
  stalled.openedAt = performance.now();
  if (bytes.length > 0) socket.write(bytes);
  return stalled;
}

void describe('T-D10 TLS handshakes that never finish', () => {
  void test('T-D10 stalled TLS handshakes (nothing sent, half a ClientHello, half and a reset) are each closed within handshakeTimeoutMs, logged GW_ERR_HANDSHAKE_TIMEOUT; nothing uncaught', { timeout: 30_000 }, async (t) => {
    const handshakeTimeoutMs = 600;
    const hello = await realClientHello();
    const target = await dosTarget(t, { tls: serverTls(), handshakeTimeoutMs }, 200, { url: 'tls://127.0.0.1:0', connect: { tls: clientTls() } });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const silent: Stalled[] = [];
    const partial: Stalled[] = [];
    for (let i = 0; i < 10; i++) silent.push(await stalledTls(t, target.url, new Uint8Array(0)));
    for (let i = 0; i < 10; i++) partial.push(await stalledTls(t, target.url, hello.subarray(0, Math.floor(hello.length / 2))));
    // and some that give up rudely: half a ClientHello, then a reset
    for (let i = 0; i < 5; i++) {
      const rude = await stalledTls(t, target.url, hello.subarray(0, 40));
      await sleep(5);
      rude.socket.resetAndDestroy();
    }
    const held = [...silent, ...partial];
    await until(() => held.every((s) => s.closedAt !== undefined), handshakeTimeoutMs + 3_000, 'every stalled handshake to be closed');
    for (const s of held) {
      const lifeMs = s.closedAt! - s.openedAt;
      assert.ok(lifeMs < handshakeTimeoutMs + 400, `a stalled TLS handshake lived ${lifeMs.toFixed(0)} ms (handshakeTimeoutMs ${handshakeTimeoutMs})`);
      assert.ok(lifeMs > handshakeTimeoutMs - 200, `closed after ${lifeMs.toFixed(0)} ms: before its deadline`);
    }
    const line = await assertClosedWith(target, 'GW_ERR_HANDSHAKE_TIMEOUT');
    assert.match(line, /^closed the connection from tls:\/\/127\.0\.0\.1:\d+: GW_ERR_HANDSHAKE_TIMEOUT/);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 stalled TLS handshakes');
    rss.assertUnder(32, 'T-D10 stalled TLS handshakes'); // 25 sockets, their TLS state and sessions
    // and the listener still serves
    const after = await within(connect(target.url, { tls: clientTls() }), 3_000, 'a client after the stalls');
    t.after(() => after.destroy());
    assert.equal(await after.client(Echo).echo('after'), 'after');
  });

  void test('T-D10 TLS handshake slowloris: 30 stalled TLS handshakes against maxPendingHandshakes 20 close the 10 oldest; a real TLS client connects meanwhile', { timeout: 30_000 }, async (t) => {
    const hello = await realClientHello();
    const target = await dosTarget(t, { tls: serverTls(), maxPendingHandshakes: 20 }, 200, { url: 'tls://127.0.0.1:0', connect: { tls: clientTls() } });
    const rss = new RssWatch();
    const canary = target.startCanary();
    const stalled: Stalled[] = [];
    for (let i = 0; i < 30; i++) {
      stalled.push(await stalledTls(t, target.url, i % 2 === 0 ? new Uint8Array(0) : hello.subarray(0, 100)));
      await sleep(2); // in order of age
    }
    await until(() => stalled.filter((s) => s.closedAt !== undefined).length >= 10, 3_000, 'the 10 oldest to be closed');
    await sleep(100);
    assert.deepEqual(
      stalled.map((s) => s.closedAt !== undefined),
      stalled.map((_, i) => i < 10),
      'the oldest 10 are closed, the newest 20 still held',
    );
    // the cap is full of stalled TLS handshakes: a real client's makes room by closing the oldest, and completes at once
    const started = performance.now();
    const legit = await within(connect(target.url, { tls: clientTls() }), 3_000, 'a real TLS client to connect while the cap is held');
    t.after(() => legit.destroy());
    assert.equal(await legit.client(Echo).echo('in'), 'in');
    const connectMs = performance.now() - started;
    assert.ok(connectMs < 1_500, `the real client took ${connectMs.toFixed(0)} ms`);
    await until(() => stalled[10]!.closedAt !== undefined, 1_000, 'the oldest held one to make room');
    assert.equal(stalled.filter((s) => s.closedAt === undefined).length, 19);
    const line = await assertClosedWith(target, 'GW_ERR_ENHANCE_YOUR_CALM');
    assert.match(line, /maxPendingHandshakes/);
    assertCanaryHealthy(target, await canary.stop(), 'T-D10 TLS handshake slowloris');
    rss.assertUnder(32, 'T-D10 TLS handshake slowloris'); // 30 sockets, their TLS state and sessions
  });
});
