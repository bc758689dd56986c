/**
 * What a plain unary call (no deadline, no signal, no metadata, no interceptor) makes besides its frames, counted:
 * no timer, no AbortController, and over TCP and ws:// no setImmediate per socket read (the read budget's turn restart
 * is armed only once a turn's reads come near the budget). Each was once per call on a path that is all about per-call
 * cost.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { connect, defineService, listen, serve, unary, type RpcSession } from '../../src/index.js';
import { deferred, within } from '../helpers.js';

const Echo = defineService('test.UnaryCost', {
  raw: unary<Uint8Array, Uint8Array>({ codec: 'raw' }),
  object: unary<{ data: Uint8Array }, { data: Uint8Array }>(),
});

interface Counts {
  setImmediate: number;
  setTimeout: number;
  abortControllers: number;
}

/** Counts setImmediate, setTimeout and new AbortController while `action` runs. */
async function counting(action: () => Promise<void>): Promise<Counts> {
  const counts: Counts = { setImmediate: 0, setTimeout: 0, abortControllers: 0 };
  const realImmediate = globalThis.setImmediate;
  const realTimeout = globalThis.setTimeout;
  const RealAbortController = globalThis.AbortController;
  globalThis.setImmediate = ((...args: Parameters<typeof setImmediate>) => {
    counts.setImmediate++;
    return realImmediate(...args);
  }) as typeof setImmediate;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    counts.setTimeout++;
    return realTimeout(...args);
  }) as typeof setTimeout;
  globalThis.AbortController = class extends RealAbortController {
    constructor() {
      super();
      counts.abortControllers++;
    }
  };
  try {
    await action();
  } finally {
    globalThis.setImmediate = realImmediate;
    globalThis.setTimeout = realTimeout;
    globalThis.AbortController = RealAbortController;
  }
  return counts;
}

async function tcpPair(t: TestContext, url = 'tcp://127.0.0.1:0'): Promise<RpcSession> {
  const accepted = deferred<RpcSession>();
  const server = await listen(url, {
    services: [serve(Echo, { raw: (r) => r, object: (r) => r })],
    onSession: (s) => accepted.resolve(s),
  });
  const session = await connect(server.url);
  t.after(async () => {
    await session.close();
    await server.close();
  });
  await within(accepted.promise, 2000, 'server session');
  return session;
}

void test('500 unary calls one after the other over TCP (both ends here): no timer, no AbortController, no setImmediate per read', { timeout: 20_000 }, async (t) => {
  const session = await tcpPair(t);
  const client = session.client(Echo);
  const data = new Uint8Array(32).fill(7);
  for (let i = 0; i < 50; i++) await client.object({ data }); // the first calls may set up what lasts (slabs, caches)
  const counts = await counting(async () => {
    for (let i = 0; i < 250; i++) {
      assert.equal((await client.raw(data)).length, 32);
      assert.equal((await client.object({ data })).data.length, 32);
    }
  });
  assert.deepEqual({ ...counts, setImmediate: 0 }, { setImmediate: 0, setTimeout: 0, abortControllers: 0 });
  // each side reads once per call, ~100 bytes (and 512 charged for its frames) against a 256 KiB budget: the count
  // restarts every ~200 reads, where a setImmediate per read was 1 000 here
  assert.ok(counts.setImmediate <= 10, `${counts.setImmediate} setImmediate calls for 1 000 socket reads`);
});

void test('500 unary calls one after the other over ws:// (both ends here): no setImmediate per WebSocket message', { timeout: 20_000 }, async (t) => {
  const session = await tcpPair(t, 'ws://127.0.0.1:0/unary-cost');
  const client = session.client(Echo);
  const data = new Uint8Array(32).fill(7);
  for (let i = 0; i < 50; i++) await client.object({ data });
  const counts = await counting(async () => {
    for (let i = 0; i < 250; i++) {
      assert.equal((await client.raw(data)).length, 32);
      assert.equal((await client.object({ data })).data.length, 32);
    }
  });
  assert.deepEqual({ ...counts, setImmediate: 0 }, { setImmediate: 0, setTimeout: 0, abortControllers: 0 });
  // as over TCP: the WebSocket transport's read budget counts as SocketTransport's does (a setImmediate per turn that
  // read was 1 000 here)
  assert.ok(counts.setImmediate <= 10, `${counts.setImmediate} setImmediate calls for 1 000 WebSocket messages`);
});
