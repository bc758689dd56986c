// gridwire's rows over one connect()ed session, through the public API (gridwire-api.ts), for `gridwire` and
// `gridwire@base` alike:
//   echo                          a unary call of bench.Echo: with payload `bytes`, `echo`, 32 bytes through the raw
//                                 codec; with `object`, `echoObject`, { data: 32 bytes } through the default (msgpack);
// and on the bench.bulk service:
//   bulk-upload / bulk-download   `put` / `get` of 64 KiB chunks until the second mark, then a clean end whose byte
//                                 count is checked (put's replies, or the server's count against the client's); the
//                                 body is produced and read as the side's BulkBody says (gridwire-bodies.ts): with
//                                 `bytes`, one big Uint8Array per call, calls back to back, then one empty `last`
//                                 call so the server knows every earlier call has ended;
//   bulk-upload-ws / -download-ws the same over ws:// (the server listens on WS_URL) instead of tcp://;
//   unary-idle / unary-under-bulk a c=1 loop of 32-byte raw-codec echo calls, alone or beside a download on the SAME
//                                 session;
//   idle-streams                  IDLE_STREAMS serverStream calls opened and left idle, for memory (the handler waits
//                                 for its ctx.signal);
//   idle-bidi                     the same with bidi calls, whose handler waits on its request iterator (no signal);
//   slow-read                     a 1 GiB download read at SLOW_READ_BYTES_PER_SEC, for memory.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CallOptions, GridwireApi, HandlerContext, Service, SessionLimits } from './gridwire-api.js';
import { BYTES_BODY_BYTES, bytesBody, readBody, streamingSource } from './gridwire-bodies.js';
import type { BulkBody } from './scenario.js';
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
const EMPTY = new Uint8Array(0);
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

/**
 * download request: how many bytes at most, whether each chunk is a fresh allocation (see `produce`), and whether
 * this is the transfer's last call (a `bytes` body's calls are not; the empty call after them is).
 */
interface GetRequest {
  bytes: number;
  fresh: boolean;
  last: boolean;
}

/** upload request: whether this is the transfer's last call (as GetRequest's `last`). */
interface PutRequest {
  name: string;
  last: boolean;
}

interface BulkClient {
  put(req: PutRequest, body: Uint8Array | AsyncIterable<Uint8Array>, options?: CallOptions): Promise<{ bytes: number }>;
  /** Chunks are views valid until the next iteration step: read their length, keep nothing. */
  get(req: GetRequest, options?: CallOptions): AsyncIterable<Uint8Array>;
  idle(req: null, options?: CallOptions): AsyncIterable<null>;
  chat(options?: CallOptions): BidiCall<null, null>;
  echo(req: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
}

/** What a bidi call gives the caller (the slice of gridwire's BidiCall the bench uses). */
interface BidiCall<Req, Res> extends AsyncIterator<Res> {
  send(request: Req): Promise<void>;
}

function defineBulk(api: GridwireApi): Service<BulkClient> {
  return api.defineService('bench.bulk', {
    put: api.upload(),
    get: api.download(),
    idle: api.serverStream(),
    chat: api.bidi(),
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

/** The generator body of a `get`, telling `onTransferEnd` when it has ended: null when it returned, else what it threw. */
async function* produceAndReport(
  req: GetRequest, ctx: SideContext, signal: AbortSignal, onTransferEnd: (err: unknown) => void,
): AsyncGenerator<Uint8Array> {
  try {
    yield* produce(req, ctx, signal);
    onTransferEnd(null);
  } catch (err) {
    onTransferEnd(err);
    throw err;
  }
}

/**
 * The handlers; `onTransferEnd` is called when the transfer has ended on this side (a `put` handler that read its
 * last call's body, a `get` whose body produced its last chunk): null when it ended cleanly, else what was thrown.
 * `body` says how a `get` produces its body and how a `put` reads it (gridwire-bodies.ts); a `fresh` download (the
 * memory run) always gets the generator.
 */
function bulkHandlers(ctx: SideContext, body: BulkBody, onTransferEnd: (err: unknown) => void): object {
  let openIdle = 0;
  return {
    async put(req: PutRequest, chunks: AsyncIterable<Uint8Array>) {
      try {
        const bytes = await readBody(body, chunks, ctx.received);
        if (req.last) onTransferEnd(null);
        return { bytes };
      } catch (err) {
        onTransferEnd(err);
        throw err;
      }
    },
    get(req: GetRequest, call: HandlerContext) {
      if (body === 'generator' || req.fresh) return produceAndReport(req, ctx, call.signal, onTransferEnd);
      if (body === 'bytes') {
        if (req.last) {
          onTransferEnd(null);
          return EMPTY;
        }
        ctx.sent.add(BYTES_BODY_BYTES);
        return bytesBody();
      }
      const stopped = (): boolean => ctx.stopSending.aborted || call.signal.aborted;
      return streamingSource(body, { sent: ctx.sent, stopped, onEnd: () => onTransferEnd(null) });
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
    // Echoes; idles while the caller sends nothing. A cancel reaches it through its request iterator, which throws.
    async *chat(requests: AsyncIterable<null>) {
      ctx.facts.idleStreamsPeak = Math.max(ctx.facts.idleStreamsPeak ?? 0, ++openIdle);
      try {
        for await (const request of requests) yield request;
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

/** Reads a download (one call, the transfer's last) to its end with `for await`, counting bytes. */
async function readDownload(bulk: BulkClient, ctx: SideContext, bytes: number, options: ReadOptions): Promise<void> {
  const t0 = performance.now();
  for await (const chunk of bulk.get({ bytes, fresh: options.fresh, last: true }, { signal: options.signal })) {
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

type BulkScenario =
  | 'bulk-upload' | 'bulk-download' | 'bulk-upload-ws' | 'bulk-download-ws' | 'unary-idle' | 'unary-under-bulk' | 'idle-streams' | 'idle-bidi'
  | 'slow-read';

/** The upload of a throughput run: one call with a streaming body, or `bytes` calls back to back; checks the count. */
async function uploadAll(bulk: BulkClient, ctx: SideContext, body: BulkBody): Promise<void> {
  let counted = 0;
  if (body === 'bytes') {
    while (!ctx.stopSending.aborted) {
      ctx.sent.add(BYTES_BODY_BYTES);
      counted += (await bulk.put({ name: 'bench', last: false }, bytesBody())).bytes;
    }
    counted += (await bulk.put({ name: 'bench', last: true }, EMPTY)).bytes;
  } else {
    const stopped = (): boolean => ctx.stopSending.aborted;
    const source = body === 'generator' ? uploadBody(ctx) : streamingSource(body, { sent: ctx.sent, stopped, onEnd: () => undefined });
    counted = (await bulk.put({ name: 'bench', last: true }, source)).bytes;
  }
  checkCount('gridwire upload', ctx.sent.total, counted);
}

/** The download of a throughput run: one call read as `body` says, or `bytes` calls back to back. */
async function downloadAll(bulk: BulkClient, ctx: SideContext, body: BulkBody): Promise<void> {
  if (body === 'generator') return readDownload(bulk, ctx, UNBOUNDED_BYTES, { fresh: false });
  if (body !== 'bytes') {
    await readBody(body, bulk.get({ bytes: UNBOUNDED_BYTES, fresh: false, last: true }), ctx.received);
    return;
  }
  while (!ctx.stopSending.aborted) await readBody(body, bulk.get({ bytes: BYTES_BODY_BYTES, fresh: false, last: false }), ctx.received);
  await readBody(body, bulk.get({ bytes: 0, fresh: false, last: true }), ctx.received);
}

function bulkScenarios(api: GridwireApi, body: BulkBody): Record<BulkScenario, Scenario> {
  const Bulk = defineBulk(api);

  /** The server side every bulk scenario uses: finish() waits for the transfer when the scenario has one. */
  function server(opts: { transfer: boolean; limits?: SessionLimits; url?: string }): Scenario['startServer'] {
    return async (ctx) => {
      const transferEnded = deferred();
      const onTransferEnd = (err: unknown): void => (err === null ? transferEnded.resolve() : transferEnded.reject(err));
      const impl = api.serve(Bulk, bulkHandlers(ctx, body, onTransferEnd));
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

  /** IDLE_STREAMS calls opened by `openOne` (each answered once) and left idle until close, which cancels them. */
  const idleCalls = (openOne: (bulk: BulkClient, signal: AbortSignal) => Promise<AsyncIterator<null>>): Scenario => ({
    startServer: server({ transfer: false, limits: IDLE_LIMITS }),
    async connectClient(target, ctx) {
      const session = await api.connect(target, IDLE_LIMITS);
      const bulk = session.client(Bulk);
      const cancel = new AbortController();
      // The iterators stay referenced (as an application holding open streams would) until close.
      let open: AsyncIterator<null>[] = [];
      return {
        async start() {
          const t0 = performance.now();
          open = await Promise.all(Array.from({ length: IDLE_STREAMS }, () => openOne(bulk, cancel.signal)));
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
  });
  const idleStreams = idleCalls(async (bulk, signal) => {
    const it = bulk.idle(null, { signal })[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done === true) throw new Error('gridwire idle stream ended before its first message');
    return it;
  });
  const idleBidi = idleCalls(async (bulk, signal) => {
    const call = bulk.chat({ signal });
    await call.send(null);
    const first = await call.next();
    if (first.done === true) throw new Error('gridwire idle bidi call ended before its first reply');
    return call;
  });

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

  const upload = client((bulk, ctx) => uploadAll(bulk, ctx, body));
  const download = client((bulk, ctx) => downloadAll(bulk, ctx, body));
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
    'idle-bidi': idleBidi,
    'slow-read': slowRead,
  };
}

export function gridwireScenarios(api: GridwireApi, concurrency: number, payload: EchoPayload, body: BulkBody): Record<'echo' | BulkScenario, Scenario> {
  return { echo: echoScenario(echoSystem(api, payload), concurrency), ...bulkScenarios(api, body) };
}
