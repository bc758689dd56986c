// Node n<index> of the mesh-formation fleet: a Mesh of all the urls, listening on urls[index]; it reports
// `listening`, calls every other node once, reports `done` with its timings, and serves until `stop`. With `barrier`,
// it listens with no peers and adds them all (so starts dialing) only on `go`, which the orchestrator sends once every
// node is listening. Default mesh options throughout (keepalive 30 s, refused dials retried within 250 ms for 10 s
// then doubling, fallback dial after 3 s).
import type { MeshNodeReport, MeshNodeSpec, ParentMsg } from '../messages.js';
import type { GridwireApi, Service } from '../systems/gridwire-api.js';
import { send, wallMs } from './child.js';

const CALL_TIMEOUT_MS = 60_000;

interface HelloClient {
  hello(req: { from: string }, options: { waitForReady: boolean; timeoutMs: number }): Promise<{ to: string }>;
}

/** "dial tcp://127.0.0.1:4001: connect ECONNREFUSED 127.0.0.1:4001" -> "ECONNREFUSED", so counts group. */
function shape(message: string | undefined): string {
  if (message === undefined) return 'no error';
  const code = /\b(E[A-Z]{3,})\b/.exec(message)?.[1];
  if (code !== undefined) return code;
  return message.replace(/tcp:\/\/\S+|unix:\/\/\S+|\d+/g, '#').slice(0, 80);
}

export async function runMeshNode({ library, index, urls, barrier }: MeshNodeSpec): Promise<void> {
  if (!Number.isInteger(index) || index < 0 || index >= urls.length) throw new Error(`bad node index ${index}`);
  // imported directly (not through loadGridwire's module) so a node loads as little as possible besides the library
  const gw = (await import(library)) as GridwireApi;
  const self = `n${index}`;
  const peerNames: string[] = [];
  const peers: Record<string, string> = {};
  urls.forEach((url, i) => {
    if (i === index) return;
    peers[`n${i}`] = url;
    peerNames.push(`n${i}`);
  });
  const Hello = gw.defineService('bench.mesh', { hello: gw.unary() }) as Service<HelloClient>;
  let warnings = 0;
  const mesh = new gw.Mesh({
    name: self,
    listen: urls[index],
    peers: barrier ? {} : peers,
    services: [gw.serve(Hello, { hello: () => ({ to: self }) })],
    log: (level, message) => {
      if (level !== 'warn') return;
      warnings++;
      process.stderr.write(`[${self}] gridwire: ${message}\n`);
    },
  });
  const backoffs: Record<string, number> = {};
  const backoffPeers = new Set<string>();
  let maxBackoffMs = 0;
  mesh.on('peer', (event) => {
    // a backoff without an error is the non-dialing side waiting fallbackDialAfterMs for the peer's dial: not a failure
    if (event.state !== 'backoff' || event.error === undefined) return;
    const key = shape(event.error?.message);
    backoffs[key] = (backoffs[key] ?? 0) + 1;
    backoffPeers.add(event.peer);
    maxBackoffMs = Math.max(maxBackoffMs, event.delayMs ?? 0);
  });
  let go: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (go = resolve));
  process.on('message', (m: ParentMsg) => {
    if (m.t === 'go') go();
    if (m.t !== 'stop') return;
    setTimeout(() => process.exit(0), 2000).unref();
    mesh.stop({ graceMs: 0 }).then(
      () => process.exit(0),
      () => process.exit(0),
    );
  });
  const loadedAt = wallMs();
  await mesh.start();
  const listeningAt = wallMs();
  send({ t: 'listening', at: listeningAt });
  let goAt = listeningAt;
  if (barrier) {
    await released;
    goAt = wallMs();
    for (const [name, url] of Object.entries(peers)) mesh.addPeer(name, url);
  }

  const callDoneAt: Record<string, number> = {};
  await Promise.all(
    peerNames.map(async (peer) => {
      const reply = await mesh.peer(peer).client(Hello).hello({ from: self }, { waitForReady: true, timeoutMs: CALL_TIMEOUT_MS });
      if (reply.to !== peer) throw new Error(`call to ${peer} was answered by ${reply.to}`);
      callDoneAt[peer] = wallMs();
    }),
  );
  const report: MeshNodeReport = {
    name: self,
    startedAt: performance.timeOrigin,
    loadedAt,
    listeningAt,
    goAt,
    callDoneAt,
    doneAt: Math.max(...Object.values(callDoneAt)),
    backoffs,
    backoffPeers: [...backoffPeers],
    maxBackoffMs,
    dials: peerNames.filter((p) => mesh.peer(p).dials).length,
    warnings,
    cpu: (({ user, system }) => ({ userUs: user, systemUs: system }))(process.cpuUsage()),
  };
  send({ t: 'done', report });
}
