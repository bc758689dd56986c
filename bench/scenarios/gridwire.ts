// gridwire's rows of the scenario suites, all over one connection to the bench.bulk service (gridwire-api.ts):
//   bulk-upload / bulk-download  `put` / `get` of 64 KiB chunks until the second mark, then a clean end whose
//                                byte count is checked (put's reply, or the server's count against the client's);
//   unary-idle / unary-under-bulk  a c=1 loop of 32-byte raw echo calls, alone or beside a download on the SAME session;
//   idle-streams                 IDLE_STREAMS serverStream calls opened and left idle, for memory;
//   slow-read                    a 1 GiB download read at SLOW_READ_BYTES_PER_SEC, for memory.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectBulk, startBulkServer, type BulkClient, type SessionLimits } from './gridwire-api.js';
import { CHUNK_BYTES, MiB, checkCount, deferred, type Scenario, type ScenarioClient, type SideContext } from './scenario.js';

/** A download's upper bound when the second mark, not the size, ends it. */
const UNBOUNDED_BYTES = Number.MAX_SAFE_INTEGER;
const ECHO_BYTES = 32;
export const IDLE_STREAMS = 10_000;
/** Room for IDLE_STREAMS on one connection (the default is 100), given on both sides as issue 3 asks. */
const IDLE_LIMITS: SessionLimits = { maxConcurrentStreams: 20_000 };
const SLOW_READ_TOTAL_BYTES = 1024 * MiB;
export const SLOW_READ_BYTES_PER_SEC = 1 * MiB;

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);

/** Yields CHUNK until the second mark: the upload body. */
async function* uploadBody(ctx: SideContext): AsyncGenerator<Uint8Array> {
  while (!ctx.stopSending.aborted) {
    ctx.sent.add(CHUNK_BYTES);
    yield CHUNK;
  }
}

interface ReadOptions {
  /** Ask for freshly allocated chunks (see `produce` in gridwire-api.ts). */
  fresh: boolean;
  /** Read no faster than this many bytes/s. */
  pace?: number;
  signal?: AbortSignal;
}

/** Reads a download to its end, counting bytes. */
async function readDownload(bulk: BulkClient, ctx: SideContext, bytes: number, options: ReadOptions): Promise<void> {
  const t0 = performance.now();
  for await (const chunk of bulk.get({ bytes, fresh: options.fresh }, { signal: options.signal })) {
    ctx.received.add(chunk.length);
    if (options.pace !== undefined) {
      const dueMs = t0 + (ctx.received.total / options.pace) * 1000;
      const aheadMs = dueMs - performance.now();
      if (aheadMs > 0) await sleep(aheadMs);
    }
  }
}

/** c=1 echo calls until the second mark, each timed. */
async function echoLoop(bulk: BulkClient, ctx: SideContext): Promise<void> {
  const request = new Uint8Array(ECHO_BYTES).fill(7);
  while (!ctx.stopSending.aborted) {
    const t0 = performance.now();
    const reply = await bulk.echo(request);
    ctx.recordLatency(performance.now() - t0);
    if (reply.byteLength !== ECHO_BYTES) throw new Error(`gridwire echo: reply of ${reply.byteLength} bytes`);
  }
}

/** The server side every gridwire scenario uses: finish() waits for the transfer when the scenario has one. */
function serverScenario(opts: { transfer: boolean; limits?: SessionLimits }): Scenario['startServer'] {
  return async (ctx) => {
    const transferEnded = deferred();
    const server = await startBulkServer(
      ctx,
      { onTransferEnd: (err) => (err === null ? transferEnded.resolve() : transferEnded.reject(err)) },
      opts.limits ?? {},
    );
    return {
      target: server.url,
      finish: () => (opts.transfer ? transferEnded.promise : Promise.resolve()),
      close: () => server.close(),
    };
  };
}

/** Runs `work` in the background from start(); finish() waits for it. Failures end the run at once. */
function backgroundClient(ctx: SideContext, close: () => Promise<void>, work: () => Promise<void>): ScenarioClient {
  let running: Promise<void> = Promise.resolve();
  return {
    start() {
      running = work();
      running.catch(ctx.fail);
      return Promise.resolve();
    },
    finish: () => running,
    close,
  };
}

const bulkUpload: Scenario = {
  startServer: serverScenario({ transfer: true }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, {});
    return backgroundClient(ctx, close, async () => {
      const { bytes } = await bulk.put({ name: 'bench' }, uploadBody(ctx));
      checkCount('gridwire upload', ctx.sent.total, bytes);
    });
  },
};

const bulkDownload: Scenario = {
  startServer: serverScenario({ transfer: true }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, {});
    return backgroundClient(ctx, close, () => readDownload(bulk, ctx, UNBOUNDED_BYTES, { fresh: false }));
  },
};

const unaryIdle: Scenario = {
  startServer: serverScenario({ transfer: false }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, {});
    return backgroundClient(ctx, close, () => echoLoop(bulk, ctx));
  },
};

const unaryUnderBulk: Scenario = {
  startServer: serverScenario({ transfer: true }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, {});
    return backgroundClient(ctx, close, async () => {
      await Promise.all([readDownload(bulk, ctx, UNBOUNDED_BYTES, { fresh: false }), echoLoop(bulk, ctx)]);
    });
  },
};

const idleStreams: Scenario = {
  startServer: serverScenario({ transfer: false, limits: IDLE_LIMITS }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, IDLE_LIMITS);
    const cancel = new AbortController();
    // The iterators stay referenced (as an application holding open streams would) until close.
    let open: AsyncIterator<null>[] = [];
    async function openOne(): Promise<AsyncIterator<null>> {
      const it = bulk.idle(null, { signal: cancel.signal })[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done === true) throw new Error('gridwire idle stream ended before its first message');
      return it;
    }
    return {
      async start() {
        const t0 = performance.now();
        open = await Promise.all(Array.from({ length: IDLE_STREAMS }, openOne));
        ctx.facts.idleStreamsOpen = open.length;
        ctx.facts.openMs = performance.now() - t0;
      },
      finish: () => Promise.resolve(),
      async close() {
        cancel.abort();
        open = [];
        await close();
      },
    };
  },
};

const slowRead: Scenario = {
  startServer: serverScenario({ transfer: false }),
  async connectClient(target, ctx) {
    const { bulk, close } = await connectBulk(target, {});
    const cancel = new AbortController();
    const options = { fresh: true, pace: SLOW_READ_BYTES_PER_SEC, signal: cancel.signal };
    return {
      start() {
        readDownload(bulk, ctx, SLOW_READ_TOTAL_BYTES, options).catch((err: unknown) => {
          if (!cancel.signal.aborted) ctx.fail(err);
        });
        return Promise.resolve();
      },
      // The read goes on past the second mark (1 GiB at 1 MiB/s would take 17 minutes); close() cancels it.
      finish: () => Promise.resolve(),
      async close() {
        cancel.abort();
        await close();
      },
    };
  },
};

export const gridwireScenarios = {
  'bulk-upload': bulkUpload,
  'bulk-download': bulkDownload,
  'unary-idle': unaryIdle,
  'unary-under-bulk': unaryUnderBulk,
  'idle-streams': idleStreams,
  'slow-read': slowRead,
} as const;
