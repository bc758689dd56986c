// gridwire through its public API (../../src/index.js): an Echo service with one unary method and the default
// (msgpack) codec. The library is imported at run time through a variable specifier and typed by the local
// GridwireApi below, so bench/ typechecks and run.ts can skip this row while src/index.ts does not exist yet.
import { PAYLOAD_BYTES, type BenchClient, type BenchServer, type BenchSystem, type ReplyFn } from './types.js';

/** The slice of the public API this benchmark uses (see the brief in run.ts). */
interface GridwireApi {
  defineService(name: string, methods: Record<string, unknown>): unknown;
  unary(): unknown;
  serve(service: unknown, impl: { echo(req: Uint8Array): Uint8Array | Promise<Uint8Array> }): unknown;
  listen(url: string, options: { services: unknown[] }): Promise<{ url: string; close(): Promise<void> }>;
  connect(url: string): Promise<GridwireSession>;
}
interface GridwireSession {
  client(service: unknown): { echo(req: Uint8Array): Promise<Uint8Array> };
  close(): Promise<void>;
}

const SPECIFIER = '../../src/index.js';

/** Imports the library and checks the functions the benchmark needs; throws with the reason when it cannot. */
export async function loadGridwire(): Promise<GridwireApi> {
  const mod = (await import(SPECIFIER)) as Partial<Record<keyof GridwireApi, unknown>>;
  const missing = (['defineService', 'unary', 'serve', 'listen', 'connect'] as const).filter(
    (k) => typeof mod[k] !== 'function',
  );
  if (missing.length > 0) throw new Error(`src/index.ts does not export ${missing.join(', ')}`);
  return mod as GridwireApi;
}

function defineEcho(api: GridwireApi): unknown {
  return api.defineService('bench.Echo', { echo: api.unary() });
}

async function startServer(): Promise<BenchServer> {
  const api = await loadGridwire();
  const impl = api.serve(defineEcho(api), {
    echo(req) {
      return req;
    },
  });
  const server = await api.listen('tcp://127.0.0.1:0', { services: [impl] });
  return { target: server.url, close: () => server.close() };
}

async function connectClient(target: string, onReply: ReplyFn): Promise<BenchClient> {
  const api = await loadGridwire();
  const session = await api.connect(target);
  const client = session.client(defineEcho(api));
  const request = new Uint8Array(PAYLOAD_BYTES).fill(7);
  function check(reply: Uint8Array): Error | null {
    return reply instanceof Uint8Array && reply.byteLength === PAYLOAD_BYTES
      ? null
      : new Error(`gridwire: unexpected reply ${String(reply)}`);
  }
  return {
    call(t0: number): void {
      client.echo(request).then(
        (reply) => onReply(check(reply), t0),
        (err: unknown) => onReply(err instanceof Error ? err : new Error(String(err)), t0),
      );
    },
    close: () => session.close(),
  };
}

export const gridwire: BenchSystem = { startServer, connectClient };
