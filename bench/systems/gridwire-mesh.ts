// gridwire's rows of the lane-latency suite: two Mesh nodes of a two-node mesh on loopback TCP, each listening on the
// address the orchestrator picked for it and listing the other by address. The server is node `b` and serves
// bench.lanes: `echo` (32-byte raw unary) and `get` (64 KiB chunks until its second mark, then a clean end). The
// client is node `a` (the pair's designated dialer); on `start` it waits until its control lane (and its data lane,
// with dataLane) is up, starts the download when the scenario has one and waits for its first chunk, starts a c=1
// echo loop on the same peer handle, and is armed. At the second mark the server stops producing, the client stops
// calling and reads the download to its end. The server counts, per call kind, which lane each call arrived on (by
// the session it came in on, named at the end), so the orchestrator can check the download took the lane it asked for.
//   mesh-idle             no other traffic (dataLane: false: one connection)
//   mesh-beside-download  beside a download from b that saturates the pair's one connection (dataLane: false)
//   mesh-data-lane        beside the same download, which the mesh routes over the pair's `data` connection
import { performance } from 'node:perf_hooks';
import type { GridwireApi, HandlerContext, MeshPeer, RpcSession, Service } from './gridwire-api.js';
import { CHUNK_BYTES, ECHO_BYTES, deferred, type Scenario } from './scenario.js';

const CLIENT_NODE = 'a';
const SERVER_NODE = 'b';
const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);
const LANES_READY_TIMEOUT_MS = 15_000;

interface LanesClient {
  echo(req: Uint8Array): Promise<Uint8Array>;
  get(req: null): AsyncIterable<Uint8Array>;
}

/**
 * Counts calls per kind and per session as they arrive, and names each session's lane (`control`, `data`, or
 * `unknown`) only at the end: a call can reach the server on an inbound session before the mesh has attached that
 * session to its peer, so a lane looked up at the first call may not be known yet.
 */
class LaneTally {
  private readonly perSession = new Map<RpcSession, Record<string, number>>();

  count(session: RpcSession, kind: string): void {
    let counts = this.perSession.get(session);
    if (counts === undefined) this.perSession.set(session, (counts = {}));
    counts[kind] = (counts[kind] ?? 0) + 1;
  }

  /** Adds `<kind>On_<lane>` counts to `facts`. */
  report(peer: MeshPeer, facts: Record<string, number>): void {
    for (const [session, counts] of this.perSession) {
      const lane = [...peer.sessions].find(([, set]) => set.has(session))?.[0] ?? 'unknown';
      for (const [kind, n] of Object.entries(counts)) facts[`${kind}On_${lane}`] = (facts[`${kind}On_${lane}`] ?? 0) + n;
    }
  }
}

/** Resolves once `peer` has a session that accepts calls on `label`. */
async function laneReady(peer: MeshPeer, label: string): Promise<void> {
  const t0 = performance.now();
  while (![...(peer.sessions.get(label) ?? [])].some((s) => s.acceptsCalls)) {
    if (performance.now() - t0 > LANES_READY_TIMEOUT_MS) throw new Error(`lane ${label} to ${peer.name} not ready after ${LANES_READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface MeshRun {
  api: GridwireApi;
  Lanes: Service<LanesClient>;
  urls: { server: string; client: string };
}

function meshScenario({ api, Lanes, urls }: MeshRun, dataLane: boolean, withDownload: boolean): Scenario {
  return {
    async startServer(ctx) {
      const lanes = new LaneTally();
      let transfer = deferred();
      transfer.resolve();
      const impl = api.serve(Lanes, {
        echo(req: Uint8Array, call: HandlerContext) {
          lanes.count(call.session, 'echo');
          return req;
        },
        get(_req: null, call: HandlerContext) {
          lanes.count(call.session, 'download');
          transfer = deferred();
          transfer.promise.catch(() => undefined);
          const ended = transfer;
          return (async function* produce(): AsyncGenerator<Uint8Array> {
            try {
              while (!ctx.stopSending.aborted && !call.signal.aborted) {
                ctx.sent.add(CHUNK_BYTES);
                yield CHUNK;
              }
              if (call.signal.aborted) ended.reject(new Error(`download cancelled: ${String(call.signal.reason)}`));
              else ended.resolve();
            } catch (err) {
              ended.reject(err);
              throw err;
            }
          })();
        },
      });
      const mesh = new api.Mesh({ name: SERVER_NODE, listen: urls.server, peers: { [CLIENT_NODE]: urls.client }, dataLane, services: [impl] });
      await mesh.start();
      return {
        target: urls.server,
        async finish() {
          await transfer.promise;
          lanes.report(mesh.peer(CLIENT_NODE), ctx.facts);
        },
        close: () => mesh.stop({ graceMs: 0 }),
      };
    },

    async connectClient(target, ctx) {
      const mesh = new api.Mesh({ name: CLIENT_NODE, listen: urls.client, peers: { [SERVER_NODE]: target }, dataLane, services: [] });
      await mesh.start();
      const peer = mesh.peer(SERVER_NODE);
      const client = peer.client(Lanes);
      ctx.facts.dials = peer.dials ? 1 : 0;
      let running: Promise<unknown> = Promise.resolve();

      async function readDownload(firstChunk: () => void): Promise<void> {
        for await (const chunk of client.get(null)) {
          ctx.received.add(chunk.length);
          firstChunk();
        }
      }

      async function echoLoop(): Promise<void> {
        const request = new Uint8Array(ECHO_BYTES).fill(7);
        while (!ctx.stopSending.aborted) {
          const t0 = performance.now();
          const reply = await client.echo(request);
          ctx.recordLatency(performance.now() - t0);
          if (reply.byteLength !== ECHO_BYTES) throw new Error(`echo: reply of ${reply.byteLength} bytes`);
        }
      }

      return {
        async start() {
          await peer.whenReady({ timeoutMs: LANES_READY_TIMEOUT_MS });
          if (dataLane) await laneReady(peer, 'data');
          const work: Promise<void>[] = [];
          if (withDownload) {
            const flowing = deferred();
            const reading = readDownload(flowing.resolve);
            reading.catch(ctx.fail);
            work.push(reading);
            await flowing.promise;
          }
          work.push(echoLoop());
          running = Promise.all(work);
          running.catch(ctx.fail);
        },
        async finish() {
          await running;
          for (const [label, set] of peer.sessions) ctx.facts[`sessions_${label}`] = set.size;
        },
        close: () => mesh.stop({ graceMs: 0 }),
      };
    },
  };
}

export type MeshScenarioName = 'mesh-idle' | 'mesh-beside-download' | 'mesh-data-lane';

export function meshScenarios(api: GridwireApi, urls: MeshRun['urls']): Record<MeshScenarioName, Scenario> {
  const Lanes = api.defineService('bench.lanes', { echo: api.unary({ codec: 'raw' }), get: api.download() }) as Service<LanesClient>;
  const run = { api, Lanes, urls };
  return {
    'mesh-idle': meshScenario(run, false, false),
    'mesh-beside-download': meshScenario(run, false, true),
    'mesh-data-lane': meshScenario(run, true, true),
  };
}
