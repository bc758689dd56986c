/**
 * The Link state machine (src/channel/link.ts) driven directly, over in-memory pairs and a silent TCP server: the
 * orderings a mesh meets rarely but must get right.
 */
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { createMemoryPair, createSession, type RpcSession } from '../../src/index.js';
import { Link } from '../../src/channel/link.js';
import type { MemoryTransport } from '../../src/transport/memory.js';
import { sleep, until, within } from '../helpers.js';

async function sessionPair(): Promise<{ near: RpcSession; far: RpcSession; farTransport: MemoryTransport }> {
  const [a, b] = createMemoryPair();
  const near = createSession(a, 'acceptor', {});
  const far = createSession(b, 'dialer', {});
  await Promise.all([near.ready, far.ready]);
  return { near, far, farTransport: b };
}

void test('a candidate that loses to the current session is kept when the current one dies during the ping check', { timeout: 5000 }, async (t) => {
  const current = await sessionPair();
  const candidate = await sessionPair();
  const link = new Link('peer x (control)', () => undefined, (c) => c === current.near);
  t.after(() => within(link.close({ graceMs: 0 }), 3000, 'link close'));
  link.offer(current.near);
  assert.equal(link.offer(candidate.near), false, 'the candidate loses while the current one may be alive');
  current.farTransport.destroy(); // the far host answers the probe's ping with an RST
  await until(() => link.session === candidate.near, 2000, 'the candidate to become the session');
  assert.equal(link.state, 'ready');
  assert.equal(candidate.far.core.peerGoawayMessage, undefined, 'the candidate was not refused as a duplicate');
});

void test('an inbound session lost while the link\'s own dial hangs does not start a second dial loop', { timeout: 10_000 }, async (t) => {
  const accepted: number[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    accepted.push(performance.now());
    sockets.push(socket);
    socket.on('error', () => undefined);
  }); // accepts and never says HELLO
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  const link = new Link('peer x (control)', () => undefined);
  t.after(() => within(link.close({ graceMs: 0 }), 3000, 'link close'));
  link.dialWith({
    url: `tcp://127.0.0.1:${address.port}`,
    options: { handshakeTimeoutMs: 500, keepaliveIntervalMs: 0 },
    reconnect: { initialDelayMs: 50, maxDelayMs: 50, lossSpreadMs: 50, startupRetryMs: 0 },
  });
  await sleep(50);
  const inbound = await sessionPair();
  assert.equal(link.offer(inbound.near), true);
  await sleep(50);
  inbound.farTransport.destroy(); // lost while the dial is still in its handshake
  await sleep(2500);
  const gaps = accepted.slice(1).map((at, i) => at - accepted[i]!);
  // one loop: a dial every ~handshakeTimeoutMs + <= 50 ms; two loops would interleave with much shorter gaps
  assert.ok(gaps.every((gap) => gap > 400), `gaps between dials: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`);
});
