/**
 * `ctx.draining`: an AbortSignal that fires when the connection begins a graceful close from either side (this side's
 * close(), server.close(), mesh.stop(), or the peer's GOAWAY), so an endless stream (a watch, a tail) ends cleanly and
 * the close finishes as soon as it has, not after its whole grace period. The caller gets every message and a clean
 * end. A handler that first reads it after the drain began finds it already aborted.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { defineService, serve, serverStream, Status, unary, type MessageStream, type ServiceImpl } from '../../src/index.js';
import { connectTo, startMesh, startServer } from '../fixtures/connections.js';
import { assertStatus, deferred, socketPath, testConnTypes, within, type Deferred } from '../helpers.js';

/** Far longer than any test here waits: a close that waits it out fails the test. */
const GRACE_MS = 10_000;
/** What "long before the grace" means under a loaded machine. */
const PROMPT_MS = 3_000;

const Watch = defineService('test.Draining', {
  /** Yields 0, 1, 2... every `intervalMs` until the connection drains, then ends cleanly. */
  tail: serverStream<number, number>(),
  /** Waits for the test's gate, then says whether ctx.draining had already fired. */
  late: unary<null, boolean>(),
});

interface Probe {
  /** ctx.draining.reason of the last tail that ended. */
  reason: Deferred<unknown>;
  started: Deferred<void>;
  gate: Deferred<void>;
}

function newProbe(): Probe {
  return { reason: deferred<unknown>(), started: deferred<void>(), gate: deferred<void>() };
}

/** Resolves after `ms`, or as soon as `signal` aborts; leaves no timer or listener behind. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

function watchService(probe: Probe): ServiceImpl {
  return serve(Watch, {
    tail: async function* (intervalMs, ctx) {
      let i = 0;
      probe.started.resolve();
      while (!ctx.draining.aborted) {
        yield i++;
        await pause(intervalMs, ctx.draining);
      }
      probe.reason.resolve(ctx.draining.reason);
    },
    late: async (_request, ctx) => {
      await probe.gate.promise;
      return ctx.draining.aborted;
    },
  });
}

/** Reads `stream` to its clean end; throws if it fails or does not end within `ms`. */
async function readToEnd(stream: MessageStream<number>, ms: number, what: string): Promise<number[]> {
  const items: number[] = [];
  await within(
    (async () => {
      for await (const item of stream) items.push(item);
    })(),
    ms,
    what,
  );
  return items;
}

/** Every message, in order, none missing: 0..n-1. */
function assertEveryMessage(items: number[], what: string): void {
  assert.ok(items.length >= 3, `${what}: at least the three read before the close, got ${items.length}`);
  assert.deepEqual(items, items.map((_, i) => i), `${what}: every message in order`);
}

/** Starts a tail, reads three messages, and returns the rest of the stream being read (to its end). */
async function tailing(client: { tail(intervalMs: number): MessageStream<number> }, probe: Probe): Promise<() => Promise<number[]>> {
  const stream = client.tail(5);
  const first: number[] = [];
  for (let i = 0; i < 3; i++) {
    const next = await within(stream.next(), 2000, `message ${i}`);
    assert.equal(next.done, false);
    first.push(next.value as number);
  }
  await probe.started.promise;
  const rest = readToEnd(stream, PROMPT_MS, 'the rest of the tail');
  rest.catch(() => undefined);
  return async () => [...first, ...(await rest)];
}

void describe('ctx.draining', () => {
  testConnTypes(
    "this side's close(): the endless stream ends on ctx.draining, the close finishes long before graceMs, the caller reads every message and a clean end; a handler reading it later finds it aborted",
    async (env) => {
      const probe = newProbe();
      const { caller, callee } = await env.open({ services: [watchService(probe)] });
      const client = caller.client(Watch);
      const late = client.late(null);
      const rest = await tailing(client, probe);

      const start = performance.now();
      const closing = callee.close({ graceMs: GRACE_MS });
      probe.gate.resolve();
      assert.equal(await within(late, PROMPT_MS, 'the late call'), true, 'read after the close began: already aborted');
      assertEveryMessage(await rest(), 'the caller');
      await within(closing, PROMPT_MS, 'the close');
      const tookMs = performance.now() - start;
      assert.ok(tookMs < PROMPT_MS, `the close took ${tookMs.toFixed(0)} ms of its ${GRACE_MS} ms grace`);
      const reason = await probe.reason.promise;
      assertStatus(reason, Status.UNAVAILABLE, 'ctx.draining.reason');
      assert.match(reason.message, /this side is closing/);
    },
    { kinds: ['memory', 'tcp'] },
  );

  testConnTypes(
    "the peer's GOAWAY: the caller closes its own connection; the handler's ctx.draining fires, the stream ends cleanly and the caller's close finishes long before graceMs",
    async (env) => {
      const probe = newProbe();
      const { caller } = await env.open({ services: [watchService(probe)] });
      const rest = await tailing(caller.client(Watch), probe);

      const start = performance.now();
      const closing = caller.close({ graceMs: GRACE_MS, reason: 'the caller is done' });
      assertEveryMessage(await rest(), 'the caller');
      await within(closing, PROMPT_MS, 'the close');
      const tookMs = performance.now() - start;
      assert.ok(tookMs < PROMPT_MS, `the close took ${tookMs.toFixed(0)} ms of its ${GRACE_MS} ms grace`);
      const reason = await probe.reason.promise;
      assertStatus(reason, Status.UNAVAILABLE, 'ctx.draining.reason');
      assert.match(reason.message, /the peer is closing the connection \(the caller is done\)/);
    },
    { kinds: ['memory', 'tcp'] },
  );

  void test('server.close() and mesh.stop() end endless streams through ctx.draining, long before graceMs', { timeout: 15_000 }, async (t) => {
    const probe = newProbe();
    const { server } = await startServer(t, { services: [watchService(probe)] });
    const session = await connectTo(t, server.url);
    const rest = await tailing(session.client(Watch), probe);
    let start = performance.now();
    await within(server.close({ graceMs: GRACE_MS }), PROMPT_MS, 'server.close()');
    assert.ok(performance.now() - start < PROMPT_MS, 'server.close() did not wait out its grace');
    assertEveryMessage(await rest(), 'the caller of a closing server');

    const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}` };
    const probeB = newProbe();
    const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, fallbackDialAfterMs: 100 });
    const b = await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [watchService(probeB)], fallbackDialAfterMs: 100 });
    await within(a.peer('b').whenReady({ timeoutMs: 3000 }), 4000, 'a reaches b');
    const fromMesh = await tailing(a.peer('b').client(Watch), probeB);
    start = performance.now();
    await within(b.stop({ graceMs: GRACE_MS }), PROMPT_MS, 'mesh.stop()');
    assert.ok(performance.now() - start < PROMPT_MS, 'mesh.stop() did not wait out its grace');
    assertEveryMessage(await fromMesh(), 'the caller of a stopping mesh node');
  });
});
