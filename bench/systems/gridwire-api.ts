// The slice of gridwire's public API the bench uses, and its loader. The library is imported at run time from a
// module URL the orchestrator chooses (this checkout's src/index.ts, another checkout's with --against, or their
// compiled JS), so the same bench code drives `gridwire` and `gridwire@base`; it is typed by this slice, not by
// src/index.ts, because the two checkouts' types need not agree where the bench does not look.

/** A service definition, typed by the bench with the client it gives. */
export interface Service<C> {
  readonly __client?: C;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  waitForReady?: boolean;
}

/** What a handler sees of its call. */
export interface HandlerContext {
  signal: AbortSignal;
  session: RpcSession;
}

export interface RpcSession {
  client<C>(service: Service<C>): C;
  close(): Promise<void>;
  readonly closed: Promise<unknown>;
  readonly acceptsCalls: boolean;
}

export interface Server {
  url: string;
  close(): Promise<void>;
}

export interface SessionLimits {
  maxConcurrentStreams?: number;
}

export interface MeshPeer {
  readonly name: string;
  readonly dials: boolean;
  /** Open sessions per lane (`control`, `data`, ...). */
  readonly sessions: Map<string, ReadonlySet<RpcSession>>;
  whenReady(options: { timeoutMs: number }): Promise<void>;
  client<C>(service: Service<C>): C;
}

export interface PeerStateEvent {
  peer: string;
  state: string;
  error?: Error;
  delayMs?: number;
}

export interface MeshOptions {
  name: string;
  listen?: string;
  peers?: Record<string, string>;
  dataLane?: boolean;
  services: unknown[];
  log?: (level: string, message: string) => void;
}

export interface Mesh {
  start(): Promise<void>;
  stop(options: { graceMs: number }): Promise<void>;
  peer(name: string): MeshPeer;
  addPeer(name: string, url: string): void;
  on(event: 'peer', listener: (event: PeerStateEvent) => void): unknown;
}

export interface GridwireApi {
  defineService(name: string, methods: Record<string, unknown>): unknown;
  unary(options?: { codec: 'raw' }): unknown;
  serverStream(): unknown;
  bidi(): unknown;
  upload(): unknown;
  download(): unknown;
  serve(service: unknown, impl: object): unknown;
  listen(
    url: string,
    options: SessionLimits & { services: unknown[]; onSession?(session: RpcSession): void; log?(level: string, message: string): void },
  ): Promise<Server>;
  connect(url: string, options?: SessionLimits): Promise<RpcSession>;
  Mesh: new (options: MeshOptions) => Mesh;
}

const REQUIRED = ['defineService', 'unary', 'serverStream', 'bidi', 'upload', 'download', 'serve', 'listen', 'connect', 'Mesh'] as const;

/** Imports the library at `url` and checks the functions the bench needs; throws with the reason when it cannot. */
export async function loadGridwire(url: string): Promise<GridwireApi> {
  const mod = (await import(url)) as Partial<Record<keyof GridwireApi, unknown>>;
  const missing = REQUIRED.filter((k) => typeof mod[k] !== 'function');
  if (missing.length > 0) throw new Error(`${url} does not export ${missing.join(', ')}`);
  return mod as GridwireApi;
}
