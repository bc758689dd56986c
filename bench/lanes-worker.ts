// One node of the `lanes` suite (suites/lanes.ts), in its own process, started by ../harness.ts over a fork IPC
// channel. Both processes are Mesh nodes of a two-node mesh on loopback TCP, each listening on the address the
// orchestrator picked for it and listing the other by address:
//   node --import tsx bench/lanes-worker.ts server <ownUrl> <peerUrl> <dataLane 0|1>
//   node --import tsx bench/lanes-worker.ts client <ownUrl> <peerUrl> <dataLane 0|1> <download 0|1>
// The server is node `b` and serves bench.lanes: `echo` (32-byte raw unary) and `get` (64 KiB chunks until its
// second mark, then a clean end). The client is node `a` (the pair's designated dialer); on `start` it waits until
// its control lane (and its data lane, with dataLane) is up, starts the download when asked to and waits for its
// first chunk, starts a c=1 echo loop on the same peer handle, and answers `armed`. Echo latencies count inside the
// window only. At the second mark the server stops producing, the client stops calling and reads the download to
// its end; both report (protocol.ts ScenarioReport). The server counts, per call kind, which lane each call arrived
// on (by the session it came in on), so the orchestrator can check the download really took the lane it asked for.
import { performance } from 'node:perf_hooks';
import { closeAndExit, fail, initWorker, send } from './child.js';
import type { ParentMsg, ScenarioReport } from './protocol.js';
import { MeasuredWindow, sampleMemory } from './window.js';
import { Mesh, defineService, download, serve, unary, type MeshPeer, type RpcSession } from '../src/index.js';

export const CLIENT_NODE = 'a';
export const SERVER_NODE = 'b';
const ECHO_BYTES = 32;
const CHUNK_BYTES = 64 * 1024;
const CHUNK = new Uint8Array(CHUNK_BYTES).fill(0x5a);
const LANES_READY_TIMEOUT_MS = 15_000;

const Lanes = defineService('bench.lanes', {
  echo: unary({ codec: 'raw' }),
  get: download<null>(),
});

/** Byte meters, the window's latencies, CPU and time; produces the report (peak RSS: the highest of ready and the marks). */
class Recorder {
  sent = 0;
  received = 0;
  readonly stop = new AbortController();
  readonly facts: Record<string, number> = {};
  private readonly ready = sampleMemory();
  private readonly window = new MeasuredWindow(() => ({ sentBytes: this.sent, receivedBytes: this.received }));

  record(ms: number): void {
    this.window.record(ms);
  }

  mark(): void {
    if (this.window.marks.length === 0) {
      this.window.open();
    } else {
      this.window.close();
      this.stop.abort();
    }
  }

  report(side: 'client' | 'server'): ScenarioReport {
    const peakRss = Math.max(this.ready.rss, ...this.window.marks.map((m) => m.rss));
    return this.window.report(side, { ready: this.ready, peakRss }, this.facts);
  }
}

/** Drives the side through the harness timeline: start (client) -> mark -> mark -> finish + report -> stop. */
function drive(rec: Recorder, side: 'client' | 'server', hooks: { start?(): Promise<void>; finish(): Promise<void>; close(): Promise<void> }): void {
  process.on('message', (msg: ParentMsg) => {
    if (msg.t === 'start' && hooks.start) {
      hooks.start().then(() => send({ t: 'armed' }), fail);
    } else if (msg.t === 'mark') {
      rec.mark();
      if (rec.stop.signal.aborted) hooks.finish().then(() => send({ t: 'report', report: rec.report(side) }), fail);
    } else if (msg.t === 'stop') {
      void closeAndExit(hooks.close);
    }
  });
}

/** Which of the peer's lanes a session belongs to (`control`, `data`, or `unknown`), cached per session. */
function laneOf(peer: () => MeshPeer): (session: RpcSession) => string {
  const cache = new WeakMap<RpcSession, string>();
  return (session) => {
    let lane = cache.get(session);
    if (lane === undefined) {
      lane = [...peer().sessions].find(([, set]) => set.has(session))?.[0] ?? 'unknown';
      cache.set(session, lane);
    }
    return lane;
  };
}

async function runServer(ownUrl: string, peerUrl: string, dataLane: boolean): Promise<void> {
  const rec = new Recorder();
  // handlers run only once the mesh below exists
  const lane = laneOf(() => mesh.peer(CLIENT_NODE));
  const count = (key: string): void => void (rec.facts[key] = (rec.facts[key] ?? 0) + 1);
  let transferEnded: Promise<void> = Promise.resolve();
  let endTransfer: (err: unknown) => void = () => undefined;
  const impl = serve(Lanes, {
    echo(req, ctx) {
      count(`echoOn_${lane(ctx.session)}`);
      return req;
    },
    get(_req, ctx) {
      count(`downloadOn_${lane(ctx.session)}`);
      transferEnded = new Promise<void>((resolve, reject) => (endTransfer = (err) => (err === null ? resolve() : reject(err))));
      transferEnded.catch(() => undefined);
      return (async function* produce(): AsyncGenerator<Uint8Array> {
        try {
          while (!rec.stop.signal.aborted && !ctx.signal.aborted) {
            rec.sent += CHUNK_BYTES;
            yield CHUNK;
          }
          endTransfer(ctx.signal.aborted ? new Error(`download cancelled: ${String(ctx.signal.reason)}`) : null);
        } catch (err) {
          endTransfer(err);
          throw err;
        }
      })();
    },
  });
  const mesh = new Mesh({ name: SERVER_NODE, listen: ownUrl, peers: { [CLIENT_NODE]: peerUrl }, dataLane, services: [impl] });
  await mesh.start();
  drive(rec, 'server', {
    finish: () => transferEnded,
    close: () => mesh.stop({ graceMs: 0 }),
  });
  send({ t: 'ready', target: ownUrl });
}

/** Resolves once `peer` has a session that accepts calls on `label`. */
async function laneReady(peer: MeshPeer, label: string): Promise<void> {
  const t0 = performance.now();
  while (![...(peer.sessions.get(label) ?? [])].some((s) => s.acceptsCalls)) {
    if (performance.now() - t0 > LANES_READY_TIMEOUT_MS) throw new Error(`lane ${label} to ${peer.name} not ready after ${LANES_READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function runClient(ownUrl: string, peerUrl: string, dataLane: boolean, withDownload: boolean): Promise<void> {
  const rec = new Recorder();
  const mesh = new Mesh({ name: CLIENT_NODE, listen: ownUrl, peers: { [SERVER_NODE]: peerUrl }, dataLane, services: [] });
  await mesh.start();
  const peer = mesh.peer(SERVER_NODE);
  const client = peer.client(Lanes);
  rec.facts.dials = peer.dials ? 1 : 0;
  let running: Promise<unknown> = Promise.resolve();

  async function readDownload(firstChunk: () => void): Promise<void> {
    for await (const chunk of client.get(null)) {
      rec.received += chunk.length;
      firstChunk();
    }
  }

  async function echoLoop(): Promise<void> {
    const request = new Uint8Array(ECHO_BYTES).fill(7);
    while (!rec.stop.signal.aborted) {
      const t0 = performance.now();
      const reply = await client.echo(request);
      rec.record(performance.now() - t0);
      if (reply.byteLength !== ECHO_BYTES) throw new Error(`echo: reply of ${reply.byteLength} bytes`);
    }
  }

  drive(rec, 'client', {
    async start() {
      await peer.whenReady({ timeoutMs: LANES_READY_TIMEOUT_MS });
      if (dataLane) await laneReady(peer, 'data');
      const work: Promise<void>[] = [];
      if (withDownload) {
        let flowing: () => void = () => undefined;
        const first = new Promise<void>((resolve) => (flowing = resolve));
        work.push(readDownload(flowing));
        work[0]!.catch(fail);
        await first;
      }
      work.push(echoLoop());
      running = Promise.all(work);
      running.catch(fail);
    },
    async finish() {
      await running;
      for (const [label, set] of peer.sessions) rec.facts[`sessions_${label}`] = set.size;
    },
    close: () => mesh.stop({ graceMs: 0 }),
  });
  send({ t: 'ready', target: peerUrl });
}

async function main(): Promise<void> {
  initWorker('bench/lanes-worker.ts');
  const [role, ownUrl, peerUrl, dataLane, withDownload] = process.argv.slice(2);
  if (ownUrl === undefined || peerUrl === undefined || (dataLane !== '0' && dataLane !== '1')) {
    fail(new Error(`usage: lanes-worker.ts server|client <ownUrl> <peerUrl> <0|1> [<0|1>], got ${process.argv.slice(2).join(' ')}`));
  }
  if (role === 'server') await runServer(ownUrl, peerUrl, dataLane === '1');
  else if (role === 'client') await runClient(ownUrl, peerUrl, dataLane === '1', withDownload === '1');
  else fail(new Error(`unknown role '${String(role)}'`));
}

main().catch(fail);
