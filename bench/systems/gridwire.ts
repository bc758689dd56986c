// gridwire's rows over one connect()ed session, through the public API (gridwire-api.ts), for `gridwire` and
// `gridwire@base` alike:
//   echo                          a unary call of bench.Echo: with payload `bytes`, `echo`, 32 bytes through the raw
//                                 codec; with `object`, `echoObject`, { data: 32 bytes } through the default (msgpack);
// and on the bench.bulk service:
//   bulk-upload / bulk-download   `put` / `get` of 64 KiB chunks until the second mark, then a clean end whose byte
//                                 count is checked (put's reply, or the server's count against the client's);
//   bulk-upload-ws / -download-ws the same over ws:// (the server listens on WS_URL) instead of tcp://;
//   unary-idle / unary-under-bulk a c=1 loop of 32-byte raw-codec echo calls, alone or beside a download on the SAME
//                                 session;
//   idle-streams                  IDLE_STREAMS serverStream calls opened and left idle, for memory;
//   slow-read                     a 1 GiB download read at SLOW_READ_BYTES_PER_SEC, for memory.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallOptions, GridwireApi, HandlerContext, Service, SessionLimits } from './gridwire-api.js';
import {
  CHUNK_BYTES, ECHO_BYTES, MiB, checkCount, deferred, echoScenario, type EchoPayload, type EchoSystem, type Scenario, type ScenarioClient,
  type SideContext,
} from './scenario.js';

/** A download's upper bound when the second mark, not the size, ends it. */
const UNBOUNDED_BYTES = Number.MAX_SAFE_INTEGER;
export const IDLE_STREAMS = 10_000;
/** Room for IDLE_STREAMS on one connection (the default is 100), given on both sides. */
export const IDLE_LIMITS: SessionLimits = { maxConcurrentStreams: 20_000 };
const SLOW_READ_TOTAL_BYTES = 1024 * MiB;
export const SLOW_READ_BYTES_PER_SEC = 1 * MiB;
const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);
const TCP_URL = 'tcp://127.0.0.1:0';
/** Where the *-ws scenarios' server listens: the same transfer over one WebSocket. */
const WS_URL = 'ws://127.0.0.1:0/gridwire';

// ---- echo (the unary suite) ----

interface EchoClient {
  /** payload `bytes`: the raw codec, no codec work. */
  echo(req: Uint8Array): Promise<Uint8Array>;
  /** payload `object`: the default codec (msgpack). */
  echoObject(req: { data: Uint8Array }): Promise<{ data: Uint8Array }>;
}

/** The reply's 32 bytes, whichever the payload; anything else is not an echo. */
function echoedBytes(reply: unknown, payload: EchoPayload): Uint8Array | undefined {
  const bytes = payload === 'object' ? (reply as { data?: unknown } | null)?.data : reply;
  return bytes instanceof Uint8Array && bytes.byteLength === ECHO_BYTES ? bytes : undefined;
}

function echoSystem(api: GridwireApi, payload: EchoPayload): EchoSystem {
  const Echo = api.defineService('bench.Echo', { echo: api.unary({ codec: 'raw' }), echoObject: api.unary() }) as Service<EchoClient>;
  return {
    async startServer() {
      const impl = api.serve(Echo, { echo: (req: Uint8Array) => req, echoObject: (req: { data: Uint8Array }) => req });
      const server = await api.listen('tcp://127.0.0.1:0', { services: [impl] });
      return { target: server.url, close: () => server.close() };
    },
    async connectClient(target, onReply) {
      const session = await api.connect(target);
      const client = session.client(Echo);
      const data = new Uint8Array(ECHO_BYTES).fill(7);
      const object = { data };
      function replied(reply: unknown, t0: number): void {
        onReply(echoedBytes(reply, payload) === undefined ? new Error(`gridwire: unexpected reply ${String(reply)}`) : null, t0);
      }
      function failed(err: unknown, t0: number): void {
        onReply(err instanceof Error ? err : new Error(String(err)), t0);
      }
      return {
        call(t0: number): void {
          (payload === 'object' ? client.echoObject(object) : client.echo(data)).then(
            (reply) => replied(reply, t0),
            (err: unknown) => failed(err, t0),
          );
        },
        close: () => session.close(),
      };
    },
  };
}

// ---- the bench.bulk service ----

/** download request: how many bytes at most, and whether each chunk is a fresh allocation (see `produce`). */
interface GetRequest {
  bytes: number;
  fresh: boolean;
}

interface BulkClient {
  put(req: { name: string }, body: AsyncIterable<Uint8Array>, options?: CallOptions): Promise<{ bytes: number }>;
  /** Chunks are views valid until the next iteration step: read their length, keep nothing. */
  get(req: GetRequest, options?: CallOptions): AsyncIterable<Uint8Array>;
  idle(req: null, options?: CallOptions): AsyncIterable<null>;
  echo(req: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
}

function defineBulk(api: GridwireApi): Service<BulkClient> {
  return api.defineService('bench.bulk', {
    put: api.upload(),
    get: api.download(),
    idle: api.serverStream(),
    echo: api.unary({ codec: 'raw' }),
  }) as Service<BulkClient>;
}

/**
 * The download body. Throughput runs yield one reused chunk, as a file server's read buffer would be; the memory
 * run asks for `fresh` chunks, each allocated and written (so its pages are resident), so that any buffering ahead
 * of the reader's credit shows in the server's RSS instead of hiding behind one shared Buffer.
 */
async function* produce(req: GetRequest, ctx: SideContext, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  let left = req.bytes;
  while (left > 0 && !ctx.stopSending.aborted && !signal.aborted) {
    const n = Math.min(CHUNK_BYTES, left);
    const chunk = req.fresh ? new Uint8Array(n).fill(0xa5) : n === CHUNK_BYTES ? CHUNK : CHUNK.subarray(0, n);
    ctx.sent.add(n);
    left -= n;
    yield chunk;
  }
}

/** The handlers; `onTransferEnd` is called when a `put` or `get` handler has ended: null when it returned, else what it threw. */
function bulkHandlers(ctx: SideContext, onTransferEnd: (err: unknown) => void): object {
  let openIdle = 0;
  return {
    async put(_req: unknown, body: AsyncIterable<Uint8Array>) {
      try {
        let bytes = 0;
        for await (const chunk of body) {
          bytes += chunk.length;
          ctx.received.add(chunk.length);
        }
        onTransferEnd(null);
        return { bytes };
      } catch (err) {
        onTransferEnd(err);
        throw err;
      }
    },
    async *get(req: GetRequest, call: HandlerContext) {
      try {
        yield* produce(req, ctx, call.signal);
        onTransferEnd(null);
      } catch (err) {
        onTransferEnd(err);
        throw err;
      }
    },
    // One message tells the caller the stream is open at the handler; then it idles until the call is cancelled.
    async *idle(_req: null, call: HandlerContext) {
      ctx.facts.idleStreamsPeak = Math.max(ctx.facts.idleStreamsPeak ?? 0, ++openIdle);
      try {
        yield null;
        await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
      } finally {
        openIdle--;
      }
    },
    echo: (req: Uint8Array) => req,
  };
}

/** Yields CHUNK until the second mark: the upload body. */
async function* uploadBody(ctx: SideContext): AsyncGenerator<Uint8Array> {
  while (!ctx.stopSending.aborted) {
    ctx.sent.add(CHUNK_BYTES);
    yield CHUNK;
  }
}

interface ReadOptions {
  /** Ask for freshly allocated chunks (see `produce`). */
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

type BulkScenario = 'bulk-upload' | 'bulk-download' | 'bulk-upload-ws' | 'bulk-download-ws' | 'unary-idle' | 'unary-under-bulk' | 'idle-streams' | 'slow-read';

function bulkScenarios(api: GridwireApi): Record<BulkScenario, Scenario> {
  const Bulk = defineBulk(api);

  /** The server side every bulk scenario uses: finish() waits for the transfer when the scenario has one. */
  function server(opts: { transfer: boolean; limits?: SessionLimits; url?: string }): Scenario['startServer'] {
    return async (ctx) => {
      const transferEnded = deferred();
      const onTransferEnd = (err: unknown): void => (err === null ? transferEnded.resolve() : transferEnded.reject(err));
      const impl = api.serve(Bulk, bulkHandlers(ctx, onTransferEnd));
      const listener = await api.listen(opts.url ?? TCP_URL, { services: [impl], ...opts.limits });
      return {
        target: listener.url,
        finish: () => (opts.transfer ? transferEnded.promise : Promise.resolve()),
        close: () => listener.close(),
      };
    };
  }

  /** A client whose work runs in the background from `start` (backgroundClient) over one session. */
  function client(work: (bulk: BulkClient, ctx: SideContext) => Promise<void>): Scenario['connectClient'] {
    return async (target, ctx) => {
      const session = await api.connect(target, {});
      const bulk = session.client(Bulk);
      return backgroundClient(ctx, () => session.close(), () => work(bulk, ctx));
    };
  }

  const idleStreams: Scenario = {
    startServer: server({ transfer: false, limits: IDLE_LIMITS }),
    async connectClient(target, ctx) {
      const session = await api.connect(target, IDLE_LIMITS);
      const bulk = session.client(Bulk);
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
          await session.close();
        },
      };
    },
  };

  const slowRead: Scenario = {
    startServer: server({ transfer: false }),
    async connectClient(target, ctx) {
      const session = await api.connect(target, {});
      const bulk = session.client(Bulk);
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
          await session.close();
        },
      };
    },
  };

  const upload = client(async (bulk, ctx) => {
    const { bytes } = await bulk.put({ name: 'bench' }, uploadBody(ctx));
    checkCount('gridwire upload', ctx.sent.total, bytes);
  });
  const download = client((bulk, ctx) => readDownload(bulk, ctx, UNBOUNDED_BYTES, { fresh: false }));
  return {
    'bulk-upload': { startServer: server({ transfer: true }), connectClient: upload },
    'bulk-download': { startServer: server({ transfer: true }), connectClient: download },
    'bulk-upload-ws': { startServer: server({ transfer: true, url: WS_URL }), connectClient: upload },
    'bulk-download-ws': { startServer: server({ transfer: true, url: WS_URL }), connectClient: download },
    'unary-idle': {
      startServer: server({ transfer: false }),
      connectClient: client(echoLoop),
    },
    'unary-under-bulk': {
      startServer: server({ transfer: true }),
      connectClient: client(async (bulk, ctx) => {
        await Promise.all([readDownload(bulk, ctx, UNBOUNDED_BYTES, { fresh: false }), echoLoop(bulk, ctx)]);
      }),
    },
    'idle-streams': idleStreams,
    'slow-read': slowRead,
  };
}

export function gridwireScenarios(api: GridwireApi, concurrency: number, payload: EchoPayload): Record<'echo' | BulkScenario, Scenario> {
  return { echo: echoScenario(echoSystem(api, payload), concurrency), ...bulkScenarios(api) };
}
