/**
 * The bulk progress watchdog (progressTimeoutMs, on the call or on the caller's session): a transfer the peer stalls
 * fails DEADLINE_EXCEEDED "no progress" and aborts the handler, while a stall of our own (a reader that pauses, a
 * handler that stops reading, a download queued behind the concurrency limit) never fires it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { defineService, download, serve, Status, upload, type CallContext, type ServiceImpl } from '../../src/index.js';
import { checkRpcSessionOptions } from '../../src/rpc/rpc-session.js';
import { connectTo, startServer } from '../fixtures/connections.js';
import { Counted, countedService } from '../fixtures/counted-service.js';
import { assertStatus, deferred, rejectsWithStatus, sleep, within, type Deferred } from '../helpers.js';

/** Bulk methods whose handlers stall on purpose, for the progress watchdog. */
const Transfer = defineService('test.lifecycle.transfer.v1', {
  /** Sends one 1 KiB chunk, then neither sends nor ends until its signal aborts. */
  stalledDownload: download<null>(),
  /** Sends `chunks` chunks of `bytes` bytes, chunk i filled with i + 1, as fast as credit allows. */
  quickDownload: download<{ chunks: number; bytes: number }>(),
  /** Reads one chunk of the body, then stops reading until its signal aborts. */
  stalledUpload: upload<null, number>(),
});

interface TransferHooks {
  /** Resolves with ctx.signal.reason when a stalled handler is aborted. */
  aborted: Deferred<unknown>;
  /** Resolves when stalledUpload has read its first chunk. */
  readOne: Deferred<void>;
}

function transferService(hooks: TransferHooks): ServiceImpl {
  const untilAborted = async (ctx: CallContext): Promise<void> => {
    if (!ctx.signal.aborted) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    hooks.aborted.resolve(ctx.signal.reason);
  };
  return serve(Transfer, {
    async *stalledDownload(_request, ctx) {
      yield new Uint8Array(1024).fill(7);
      await untilAborted(ctx);
    },
    async *quickDownload({ chunks, bytes }) {
      for (let i = 0; i < chunks; i++) yield new Uint8Array(bytes).fill(i + 1);
    },
    async stalledUpload(_request, body, ctx) {
      await body.next();
      hooks.readOne.resolve();
      await untilAborted(ctx);
      throw ctx.signal.reason as Error;
    },
  });
}

const transferHooks = (): TransferHooks => ({ aborted: deferred<unknown>(), readOne: deferred() });

// ---------------------------------------------------------------- tests

void describe('bulk progress timeout', () => {
  for (const where of ['the call', "the caller's session"] as const) {
    void test(`T-X7 a download whose handler sends one chunk and then stalls fails DEADLINE_EXCEEDED "no progress" after progressTimeoutMs (400 ms, on ${where}); the handler's signal aborts with DEADLINE_EXCEEDED`, { timeout: 5000 }, async (t) => {
      const hooks = transferHooks();
      // the server's own watchdog (200 ms) must stay quiet: a handler that does not produce is its own stall
      const { server } = await startServer(t, { services: [transferService(hooks)], progressTimeoutMs: 200 });
      const onCall = where === 'the call';
      const client = await connectTo(t, server.url, onCall ? {} : { progressTimeoutMs: 400 });
      const body = client.client(Transfer).stalledDownload(null, onCall ? { progressTimeoutMs: 400 } : {});
      const first = await within(body.next(), 2000, 'the first chunk');
      assert.equal(first.done, false);
      assert.equal(first.value?.length, 1024);
      const start = performance.now();

      const error = await rejectsWithStatus(within(body.next(), 2000, 'the stalled body'), Status.DEADLINE_EXCEEDED, 'the reader');
      const elapsed = performance.now() - start;
      assert.match(error.message, /no progress/);
      assert.match(error.message, /400 ms/, "the caller's watchdog fired (not the server's, 200 ms)");
      assert.ok(elapsed >= 380 && elapsed < 1000, `failed ${elapsed.toFixed(0)} ms after the last chunk (progressTimeoutMs 400)`);
      assertStatus(await within(hooks.aborted.promise, 1000, "the handler's signal"), Status.DEADLINE_EXCEEDED, "the handler's abort reason");

      // only that call failed: the connection carries the next transfer
      const chunks: Uint8Array[] = [];
      for await (const chunk of client.client(Transfer).quickDownload({ chunks: 2, bytes: 100 })) chunks.push(chunk);
      assert.equal(chunks.reduce((n, c) => n + c.length, 0), 200);
    });
  }

  void test('T-X7 an upload whose handler stops reading the body fails DEADLINE_EXCEEDED "no progress" at the caller (progressTimeoutMs 400 on the call); the handler, whose stall is its own (200 ms watchdog), is aborted with DEADLINE_EXCEEDED', { timeout: 5000 }, async (t) => {
    const hooks = transferHooks();
    const { server } = await startServer(t, { services: [transferService(hooks)], progressTimeoutMs: 200 });
    const client = await connectTo(t, server.url);
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) yield new Uint8Array(64 * 1024).fill(++produced & 0xff);
    }
    const start = performance.now();
    const upload = client.client(Transfer).stalledUpload(null, endless(), { progressTimeoutMs: 400 });
    const error = await rejectsWithStatus(within(upload, 3000, 'the upload'), Status.DEADLINE_EXCEEDED, 'the upload');
    const elapsed = performance.now() - start;
    assert.match(error.message, /no progress/);
    assert.match(error.message, /400 ms/, "the caller's watchdog fired (not the handler's, 200 ms)");
    assert.ok(elapsed >= 400 && elapsed < 2000, `failed after ${elapsed.toFixed(0)} ms`);
    await within(hooks.readOne.promise, 100, 'the handler read a chunk');
    assert.ok(produced * 64 * 1024 > 256 * 1024, `the source produced ${produced} chunks: more than the 256 KiB bulk window, so it waited on credit`);
    assertStatus(await within(hooks.aborted.promise, 1000, "the handler's signal"), Status.DEADLINE_EXCEEDED, "the handler's abort reason");
  });

  void test('a download whose reader pauses 800 ms between chunks completes (progressTimeoutMs 200 on the call): a stall of our own never fires the watchdog', { timeout: 8000 }, async (t) => {
    const { server } = await startServer(t, { services: [transferService(transferHooks())] });
    // a 16 KiB window holds one chunk: while we pause, the handler waits on our credit and we hold a chunk unread
    const client = await connectTo(t, server.url, { bulkWindow: 16 * 1024 });
    const chunks: Uint8Array[] = [];
    const read = async (): Promise<void> => {
      for await (const chunk of client.client(Transfer).quickDownload({ chunks: 3, bytes: 16 * 1024 }, { progressTimeoutMs: 200 })) {
        chunks.push(chunk);
        if (chunks.length < 3) await sleep(800);
      }
    };
    await within(read(), 5000, 'the slow download');
    assert.deepEqual(
      chunks.map((c) => [c.length, c[0], c[c.length - 1]]),
      [
        [16 * 1024, 1, 1],
        [16 * 1024, 2, 2],
        [16 * 1024, 3, 3],
      ],
    );
  });

  // Regression found by review (fixed in 0e3bab8: a download queued for a slot is not 'stalled by the peer').
  void test('a download queued behind a slow one (server maxConcurrentStreams 1) is not failed "no progress" by progressTimeoutMs 300; both complete', { timeout: 6000 }, async (t) => {
    const counts: Record<string, number> = {};
    const { server } = await startServer(t, { services: [countedService(counts)], maxConcurrentStreams: 1 });
    const client = (await connectTo(t, server.url, { progressTimeoutMs: 300 })).client(Counted);
    const drain = async (ms: number): Promise<number> => {
      let n = 0;
      for await (const chunk of client.slow({ ms })) n += chunk.length;
      return n;
    };
    const first = drain(1000);
    const second = drain(100);
    const [a, b] = await within(Promise.all([first, second]), 4000, 'both downloads');
    assert.ok(a > 0 && b > 0, `both delivered bytes (${a}, ${b})`);
    assert.equal(counts.slow, 2);
  });

  void test('progressTimeoutMs NaN, negative or not a number: on the call, INVALID_ARGUMENT naming it (nothing sent); as a session option, a RangeError', { timeout: 5000 }, async (t) => {
    const { server } = await startServer(t, { services: [transferService(transferHooks())] });
    const client = (await connectTo(t, server.url)).client(Transfer);
    for (const progressTimeoutMs of [NaN, -1, '100' as unknown as number]) {
      const stream = client.quickDownload({ chunks: 1, bytes: 16 }, { progressTimeoutMs });
      const error = await rejectsWithStatus(within(stream.next(), 2000, 'the download'), Status.INVALID_ARGUMENT, `progressTimeoutMs ${String(progressTimeoutMs)}`);
      assert.match(error.message, /progressTimeoutMs must be a number of ms, 0 or more/);
      assert.equal(error.retrySafe, true);
      assert.throws(() => checkRpcSessionOptions({ progressTimeoutMs }), (e: unknown) => e instanceof RangeError && /progressTimeoutMs/.test(e.message), 'the session option');
    }
    // 0 and Infinity disable the watchdog: the download completes
    for (const progressTimeoutMs of [0, Infinity]) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of client.quickDownload({ chunks: 2, bytes: 16 }, { progressTimeoutMs })) chunks.push(chunk);
      assert.equal(chunks.length, 2, `progressTimeoutMs ${progressTimeoutMs}`);
    }
  });
});
