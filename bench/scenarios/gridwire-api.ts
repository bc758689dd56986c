// gridwire's streaming API as the bulk, mixed and rss suites use it, and the one bench service they all call. As in
// ../systems/gridwire.ts, the library is imported through a variable specifier and typed by the local slice below,
// so bench/ typechecks, and the other rows still run, whether or not src/ exports the streaming calls yet.
import { CHUNK_BYTES, type SideContext } from './scenario.js';

/** What a handler sees of its call. */
export interface HandlerContext {
  signal: AbortSignal;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** download request: how many bytes at most, and whether each chunk is a fresh allocation (see FRESH below). */
export interface GetRequest {
  bytes: number;
  fresh: boolean;
}

/** The handlers of the bench.bulk service. */
export interface BulkHandlers {
  put(req: { name: string }, body: AsyncIterable<Uint8Array>, ctx: HandlerContext): Promise<{ bytes: number }>;
  get(req: GetRequest, ctx: HandlerContext): AsyncIterable<Uint8Array>;
  idle(req: null, ctx: HandlerContext): AsyncIterable<null>;
  echo(req: Uint8Array): Uint8Array;
}

/** The client of the bench.bulk service. */
export interface BulkClient {
  put(req: { name: string }, body: AsyncIterable<Uint8Array>, options?: CallOptions): Promise<{ bytes: number }>;
  /** Chunks are views valid until the next iteration step: read their length, keep nothing. */
  get(req: GetRequest, options?: CallOptions): AsyncIterable<Uint8Array>;
  idle(req: null, options?: CallOptions): AsyncIterable<null>;
  echo(req: Uint8Array, options?: CallOptions): Promise<Uint8Array>;
}

export interface SessionLimits {
  maxConcurrentStreams?: number;
}

interface GridwireStreamsApi {
  defineService(name: string, methods: Record<string, unknown>): unknown;
  unary(options: { codec: 'raw' }): unknown;
  serverStream(): unknown;
  upload(): unknown;
  download(): unknown;
  serve(service: unknown, impl: BulkHandlers): unknown;
  listen(url: string, options: SessionLimits & { services: unknown[] }): Promise<{ url: string; close(): Promise<void> }>;
  connect(url: string, options?: SessionLimits): Promise<GridwireSession>;
}

interface GridwireSession {
  client(service: unknown): BulkClient;
  close(): Promise<void>;
}

const SPECIFIER = '../../src/index.js';
const REQUIRED = ['defineService', 'unary', 'serverStream', 'upload', 'download', 'serve', 'listen', 'connect'] as const;

/** Imports the library and checks the functions the streaming suites need; throws with the reason when it cannot. */
export async function loadGridwireStreams(): Promise<GridwireStreamsApi> {
  const mod = (await import(SPECIFIER)) as Partial<Record<keyof GridwireStreamsApi, unknown>>;
  const missing = REQUIRED.filter((k) => typeof mod[k] !== 'function');
  if (missing.length > 0) throw new Error(`src/index.ts does not export ${missing.join(', ')}`);
  return mod as GridwireStreamsApi;
}

function defineBulk(api: GridwireStreamsApi): unknown {
  return api.defineService('bench.bulk', {
    put: api.upload(),
    get: api.download(),
    idle: api.serverStream(),
    echo: api.unary({ codec: 'raw' }),
  });
}

const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);

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

export interface BulkServerHooks {
  /** Called when a `put` or `get` handler has ended: with null when it returned, else with what it threw. */
  onTransferEnd(err: unknown): void;
}

function bulkHandlers(ctx: SideContext, hooks: BulkServerHooks): BulkHandlers {
  let openIdle = 0;
  return {
    async put(_req, body) {
      try {
        let bytes = 0;
        for await (const chunk of body) {
          bytes += chunk.length;
          ctx.received.add(chunk.length);
        }
        hooks.onTransferEnd(null);
        return { bytes };
      } catch (err) {
        hooks.onTransferEnd(err);
        throw err;
      }
    },
    async *get(req, call) {
      try {
        yield* produce(req, ctx, call.signal);
        hooks.onTransferEnd(null);
      } catch (err) {
        hooks.onTransferEnd(err);
        throw err;
      }
    },
    // One message tells the caller the stream is open at the handler; then it idles until the call is cancelled.
    async *idle(_req, call) {
      ctx.facts.idleStreamsPeak = Math.max(ctx.facts.idleStreamsPeak ?? 0, ++openIdle);
      try {
        yield null;
        await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
      } finally {
        openIdle--;
      }
    },
    echo: (req) => req,
  };
}

export interface BulkServer {
  url: string;
  close(): Promise<void>;
}

export async function startBulkServer(ctx: SideContext, hooks: BulkServerHooks, limits: SessionLimits): Promise<BulkServer> {
  const api = await loadGridwireStreams();
  const impl = api.serve(defineBulk(api), bulkHandlers(ctx, hooks));
  return api.listen('tcp://127.0.0.1:0', { services: [impl], ...limits });
}

export async function connectBulk(url: string, limits: SessionLimits): Promise<{ bulk: BulkClient; close(): Promise<void> }> {
  const api = await loadGridwireStreams();
  const session = await api.connect(url, limits);
  return { bulk: session.client(defineBulk(api)), close: () => session.close() };
}
