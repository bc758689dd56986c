/**
 * Bulk transfers share a connection fairly and hold bounded memory, over the in-memory pair and TCP, both directions:
 * - a small unary call, either way, completes while a 256 MiB download or a 64 MiB upload saturates the connection,
 *   and while the transfer's reader has stopped reading (a slow reader holds back only its own stream);
 * - with a reader that is slow or does not read at all for a while, the producer (the handler's generator, or the
 *   caller's source) never gets more than the receive window plus a few chunks ahead of what the reader consumed;
 * - an upload waiting for a concurrency slot pulls no more than the sender's queue holds.
 *
 * "Ahead" is measured at the producer: bytes it yielded minus bytes the reader has taken. Bound: the receiver's window
 * (bulkWindow; for uploads at least the initial stream window, which the caller may use before the handler has read
 * the request; by default the window tuner may grow it, and the bound is then the largest window it reached, which
 * the reader's session reports), plus the sender's queue high-water mark (64 KiB) and a couple of chunks in hand:
 * SLACK below. The cases with a window of their own turn the tuning off (maxBulkWindow), so the window is exactly theirs.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { serve, Status, type RpcSession, type ServiceImpl, type SessionOptions } from '../../src/index.js';
import { Bulk, CHUNK_BYTES, KiB, MiB, patternChunk } from '../fixtures/bulk.js';
import { rejectsWithStatus, sleep, testConnTypes, within, type ConnTestOptions } from '../helpers.js';

const kinds: ConnTestOptions = { kinds: ['memory', 'tcp'], timeout: 20_000 };
const SLACK = 4 * CHUNK_BYTES;
const DEFAULT_BULK_WINDOW = 256 * KiB;
const DEFAULT_STREAM_WINDOW = 256 * KiB;

/** Producer and reader counts of one transfer. */
class Flow {
  produced = 0;
  consumed = 0;
  maxAhead = 0;

  /** `total` bytes of the pattern; records how far ahead of the reader the producer got. */
  async *source(total: number): AsyncGenerator<Uint8Array> {
    for (let i = 0; this.produced < total; i++) {
      const chunk = patternChunk(i, Math.min(CHUNK_BYTES, total - this.produced));
      this.produced += chunk.length;
      this.maxAhead = Math.max(this.maxAhead, this.produced - this.consumed);
      yield chunk;
    }
  }

  take(chunk: Uint8Array): void {
    this.consumed += chunk.length;
  }

  get ahead(): number {
    return this.produced - this.consumed;
  }

  /** Waits until the producer has made no progress for `quietMs`: it is waiting for the reader. */
  async stalled(quietMs = 100, ms = 5000): Promise<void> {
    const end = performance.now() + ms;
    let last = -1;
    while (this.produced !== last) {
      if (performance.now() > end) assert.fail(`the producer did not stop within ${ms} ms (produced ${this.produced}, consumed ${this.consumed})`);
      last = this.produced;
      await sleep(quietMs);
    }
  }
}

/**
 * Bulk whose download is fed by `flows.download` and whose upload handler reads into `flows.upload`, pausing while
 * `flows.hold` is set and for `flows.pauseMs` after every MiB; echo on both sides, so each side can call the other.
 */
interface Flows {
  download: Flow;
  upload: Flow;
  hold?: Promise<void>;
  pauseMs?: number;
}

function flowService(flows: Flows): ServiceImpl {
  return serve(Bulk, {
    async put(req, body) {
      const flow = flows.upload;
      for await (const chunk of body) {
        flow.take(chunk);
        if (flows.hold !== undefined) await flows.hold;
        if (flows.pauseMs !== undefined && flow.consumed % MiB === 0) await sleep(flows.pauseMs);
      }
      return { name: req.name, bytes: flow.consumed, chunks: 0, sha256: '' };
    },
    get: (req) => flows.download.source(req.bytes),
    echo: (s) => `echo ${s}`,
  });
}

/** Unary calls both ways (caller -> callee, callee -> caller) on the connection the transfer uses. */
async function echoBothWays(caller: RpcSession, callee: RpcSession, what: string): Promise<void> {
  const [a, b] = await within(Promise.all([caller.client(Bulk).echo('a'), callee.client(Bulk).echo('b')]), 5000, `unary calls ${what}`);
  assert.equal(a, 'echo a');
  assert.equal(b, 'echo b');
}

/** Reads a download into `flow`: `read(upTo)` takes chunks until `upTo` bytes in all; `end()` is true on a clean end. */
function reader(stream: AsyncIterable<Uint8Array>, flow: Flow): { read(upTo: number, pauseEveryMiBMs?: number): Promise<void>; end(): Promise<boolean> } {
  const iterator = stream[Symbol.asyncIterator]();
  return {
    async read(upTo, pauseEveryMiBMs) {
      while (flow.consumed < upTo) {
        const next = await iterator.next();
        if (next.done) assert.fail(`the download ended after ${flow.consumed} bytes`);
        flow.take(next.value);
        if (pauseEveryMiBMs !== undefined && flow.consumed % MiB === 0) await sleep(pauseEveryMiBMs);
      }
    },
    async end() {
      return (await iterator.next()).done === true;
    },
  };
}

void describe('bulk: unary calls are not stuck behind a bulk transfer', () => {
  testConnTypes(
    'T-S7 a 256 MiB download at full speed: unary calls both ways complete while it is still in progress',
    async (env) => {
      const flows: Flows = { download: new Flow(), upload: new Flow() };
      const service = flowService(flows);
      const { caller, callee } = await env.open({ services: [service], callerServices: [service] });
      const total = 256 * MiB;
      const { read, end } = reader(caller.client(Bulk).get({ bytes: total }), flows.download);
      await within(read(MiB), 5000, 'the first MiB');
      const reading = read(total);
      await echoBothWays(caller, callee, 'during the download');
      const consumed = flows.download.consumed;
      assert.ok(consumed < total, `the calls completed while the download was in progress (${(consumed / MiB).toFixed(0)} of 256 MiB)`);
      await within(reading, 15_000, 'the rest of the download');
      assert.equal(flows.download.consumed, total);
      assert.equal(await end(), true, 'then a clean end');
    },
    kinds,
  );

  testConnTypes(
    'T-S7 a 64 MiB upload at full speed: unary calls both ways complete while it is still in progress',
    async (env) => {
      const flows: Flows = { download: new Flow(), upload: new Flow() };
      const service = flowService(flows);
      const { caller, callee } = await env.open({ services: [service], callerServices: [service] });
      const total = 64 * MiB;
      const source = new Flow();
      const upload = caller.client(Bulk).put({ name: 'big' }, source.source(total));
      let finished = false;
      void upload.then(() => (finished = true), () => undefined);
      await within(
        (async () => {
          while (flows.upload.consumed < MiB) await sleep(1);
        })(),
        5000,
        'the first MiB',
      );
      await echoBothWays(caller, callee, 'during the upload');
      assert.equal(finished, false, `the calls completed while the upload was in progress (${(flows.upload.consumed / MiB).toFixed(0)} of 64 MiB)`);
      const result = await within(upload, 15_000, 'the rest of the upload');
      assert.equal(result.bytes, total);
    },
    kinds,
  );

  testConnTypes(
    'T-S7 a download whose reader has stopped and an upload whose handler has stopped: unary calls both ways still complete',
    async (env) => {
      let release!: () => void;
      const flows: Flows = { download: new Flow(), upload: new Flow(), hold: new Promise<void>((resolve) => (release = resolve)) };
      const service = flowService(flows);
      const { caller, callee } = await env.open({ services: [service], callerServices: [service] });
      const total = 16 * MiB;
      const { read, end } = reader(caller.client(Bulk).get({ bytes: total }), flows.download);
      await within(read(MiB), 5000, 'the first MiB of the download');
      const source = new Flow();
      const upload = caller.client(Bulk).put({ name: 'held' }, source.source(total));
      await flows.download.stalled();
      await source.stalled();
      assert.ok(flows.download.produced < total && source.produced < total, 'both transfers are waiting for their readers');
      await echoBothWays(caller, callee, 'while both transfers wait for their readers');
      release();
      flows.hold = undefined;
      await within(read(total), 10_000, 'the rest of the download');
      assert.equal(flows.download.consumed, total);
      assert.equal(await end(), true, 'then a clean end');
      assert.equal((await within(upload, 10_000, 'the rest of the upload')).bytes, total);
    },
    kinds,
  );
});

void describe('bulk: an upload queued behind the concurrency limit', () => {
  testConnTypes(
    'pulls at most 64 KiB + a chunk of its source until it is sent; cancelling it stops the source; the others complete',
    async (env) => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const service = serve(Bulk, {
        async put(req, body) {
          let bytes = 0;
          for await (const chunk of body) {
            bytes += chunk.length;
            if (req.name === 'first' && bytes === MiB) await gate;
          }
          return { name: req.name, bytes, chunks: 0, sha256: '' };
        },
        get: () => [],
        echo: (s) => `echo ${s}`,
      });
      const { caller } = await env.open({ services: [service], callee: { maxConcurrentStreams: 1 } });
      const files = caller.client(Bulk);
      const first = new Flow();
      const running = files.put({ name: 'first' }, first.source(8 * MiB));
      await first.stalled();
      const queued = new Flow();
      let stopped = false;
      const controller = new AbortController();
      const source = (async function* () {
        try {
          yield* queued.source(8 * MiB);
        } finally {
          stopped = true;
        }
      })();
      const waiting = files.put({ name: 'queued' }, source, { signal: controller.signal });
      await queued.stalled();
      assert.ok(queued.produced <= 64 * KiB + CHUNK_BYTES, `the queued upload pulled ${queued.produced} bytes of its source`);
      controller.abort();
      await within(rejectsWithStatus(waiting, Status.CANCELLED, 'the queued upload'), 1000, 'the cancel');
      await within(
        (async () => {
          while (!stopped) await sleep(1);
        })(),
        1000,
        "the queued source's finally",
      );
      release();
      assert.equal((await within(running, 10_000, 'the running upload')).bytes, 8 * MiB);
      const after = new Flow();
      assert.equal((await within(files.put({ name: 'after' }, after.source(4 * MiB)), 10_000, 'an upload after')).bytes, 4 * MiB);
    },
    kinds,
  );
});

void describe('bulk: a slow reader bounds what the sender produces', () => {
  const forward: ConnTestOptions = { ...kinds, directions: ['forward'] };
  const downloadCases: Array<[string, SessionOptions, number, ConnTestOptions]> = [
    ['default bulkWindow (256 KiB, tuned)', {}, DEFAULT_BULK_WINDOW, kinds],
    ['bulkWindow 1 MiB on the reader', { bulkWindow: MiB, maxBulkWindow: MiB }, MiB, forward],
    ['bulkWindow 4 MiB on the reader', { bulkWindow: 4 * MiB, maxBulkWindow: 4 * MiB }, 4 * MiB, forward],
  ];
  for (const [name, readerOptions, window, options] of downloadCases) {
    testConnTypes(
      `T-D5 256 MiB download, ${name}: not read for a while, then read slowly: the generator stays within the window + ${SLACK / KiB} KiB`,
      async (env, t) => {
        const flows: Flows = { download: new Flow(), upload: new Flow() };
        const { caller } = await env.open({ services: [flowService(flows)], caller: readerOptions });
        const bound = (): number => Math.max(window, caller.core.windowStats.largestWindowBytes);
        const flow = flows.download;
        const total = 256 * MiB;
        const { read, end } = reader(caller.client(Bulk).get({ bytes: total }), flow);
        // not read at all: the generator runs until the window and the sender's queue are full, then waits
        await flow.stalled();
        assert.ok(flow.produced >= window, `the generator filled the window (${flow.produced} bytes)`);
        assert.ok(flow.produced <= bound() + SLACK, `unread: the generator produced ${flow.produced} bytes, window ${bound()}`);
        // a few slow reads, with pauses, then the rest at full speed
        await within(read(8 * MiB, 5), 10_000, 'slow reads');
        await flow.stalled();
        assert.ok(flow.ahead <= bound() + SLACK, `after a pause: ${flow.ahead} bytes ahead, window ${bound()}`);
        await within(read(total), 15_000, 'the rest');
        assert.equal(flow.consumed, total);
        assert.equal(await end(), true, 'then a clean end');
        t.diagnostic(`at most ${(flow.maxAhead / KiB).toFixed(0)} KiB ahead of the reader (window ${window / KiB} KiB, grown to ${bound() / KiB} KiB)`);
        assert.ok(flow.maxAhead <= bound() + SLACK, `the generator got ${flow.maxAhead} bytes ahead of the reader, window ${bound()}`);
      },
      options,
    );
  }

  const uploadCases: Array<[string, SessionOptions, number, ConnTestOptions]> = [
    ['default bulkWindow (256 KiB, tuned)', {}, DEFAULT_BULK_WINDOW, kinds],
    ['bulkWindow 4 MiB on the handler side', { bulkWindow: 4 * MiB, maxBulkWindow: 4 * MiB }, 4 * MiB, forward],
    ['bulkWindow and initialStreamWindow 64 KiB on the handler side', { bulkWindow: 64 * KiB, maxBulkWindow: 64 * KiB, initialStreamWindow: 64 * KiB }, 64 * KiB, forward],
    // the caller may send up to the initial stream window before the handler side has read the request and knows
    // the call is an upload, so a smaller bulkWindow cannot take that credit back
    ['bulkWindow 64 KiB (below the initial stream window) on the handler side', { bulkWindow: 64 * KiB, maxBulkWindow: 64 * KiB }, DEFAULT_STREAM_WINDOW, forward],
  ];
  for (const [name, handlerOptions, window, options] of uploadCases) {
    testConnTypes(
      `T-D5 64 MiB upload, ${name}: the handler stops, then reads slowly: the source stays within the window + ${SLACK / KiB} KiB`,
      async (env, t) => {
        let release!: () => void;
        const flows: Flows = { download: new Flow(), upload: new Flow(), hold: new Promise<void>((resolve) => (release = resolve)), pauseMs: 2 };
        const { caller, callee } = await env.open({ services: [flowService(flows)], callee: handlerOptions });
        const bound = (): number => Math.max(window, callee.core.windowStats.largestWindowBytes);
        const total = 64 * MiB;
        const source = new Flow();
        // the handler records into flows.upload; the source's counts must see the handler's consumption
        flows.upload = source;
        const upload = caller.client(Bulk).put({ name: 'slow' }, source.source(total));
        await source.stalled();
        assert.ok(source.produced >= window, `the source filled the window (${source.produced} bytes)`);
        assert.ok(source.produced <= bound() + SLACK, `held: the source produced ${source.produced} bytes, window ${bound()}`);
        release();
        flows.hold = undefined;
        const result = await within(upload, 15_000, 'the upload');
        assert.equal(result.bytes, total);
        t.diagnostic(`at most ${(source.maxAhead / KiB).toFixed(0)} KiB ahead of the handler (window ${window / KiB} KiB, grown to ${bound() / KiB} KiB)`);
        assert.ok(source.maxAhead <= bound() + SLACK, `the source got ${source.maxAhead} bytes ahead of the handler, window ${bound()}`);
      },
      options,
    );
  }
});
