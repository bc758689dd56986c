// The processes of the dos suite, one per role:
//   dos-server    a default listen() serving bench.dos/echo (msgpack), its warn log collected. `mark` 1: memory after
//                 GC, then RSS sampled every SAMPLE_MS and the event-loop delay measured; `mark` 2: memory after GC;
//                 `measure`: the report (with the warn lines logged until then)
//   dos-canary    connect() with defaults, then on `start` c=1 echo calls of { data: Uint8Array(32) } in a loop; each
//                 `mark` moves to the next window (warm-up, idle, attack); the third sends both windows' latencies
//   dos-attacker  on `attack`, runs spec.attack for spec.seconds (roles/dos-attacks.ts), then reports
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { DosCanaryReport, DosSpec, ParentMsg } from '../messages.js';
import { LatencyRecorder } from '../stats.js';
import { loadGridwire, type GridwireApi, type Service } from '../systems/gridwire-api.js';
import { fail, sampleMemory, send } from './child.js';
import { isAttackName, runAttack } from './dos-attacks.js';

const SAMPLE_MS = 20;
const MAX_WARNINGS = 20;

interface DosClient {
  echo(req: { data: Uint8Array }): Promise<{ data: Uint8Array }>;
}

function defineDos(gw: GridwireApi): Service<DosClient> {
  return gw.defineService('bench.dos', { echo: gw.unary() }) as Service<DosClient>;
}

async function runServer(spec: DosSpec): Promise<void> {
  const gw = await loadGridwire(spec.library);
  const warnings: string[] = [];
  let warningCount = 0;
  const server = await gw.listen('tcp://127.0.0.1:0', {
    services: [gw.serve(defineDos(gw), { echo: (req: unknown) => req })],
    log: (level, message) => {
      if (level !== 'warn') return;
      warningCount++;
      if (warnings.length < MAX_WARNINGS) warnings.push(message);
    },
  });
  let marks = 0;
  let before = sampleMemory();
  let after = before;
  let peakRss = 0;
  let sampler: NodeJS.Timeout | undefined;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  process.on('message', function dosServerOnParentMsg(m: ParentMsg) {
    if (m.t === 'stop') process.exit(0);
    if (m.t === 'mark' && ++marks === 1) {
      before = sampleMemory();
      peakRss = before.rss;
      warnings.length = 0;
      warningCount = 0;
      sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), SAMPLE_MS);
      loop.enable();
    } else if (m.t === 'mark' && marks === 2) {
      clearInterval(sampler);
      loop.disable();
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      after = sampleMemory();
    } else if (m.t === 'measure') {
      // asked for once the attacker has let go: a connection closed by a protocol error is logged when it has closed
      send({ t: 'dos-server', report: { before, peakRss, after, maxLoopDelayMs: loop.max / 1e6, warnings, warningCount } });
    }
  });
  send({ t: 'ready', target: server.url, memory: sampleMemory() });
}

async function runCanary(spec: DosSpec): Promise<void> {
  const gw = await loadGridwire(spec.library);
  const session = await gw.connect(spec.target);
  const client = session.client(defineDos(gw));
  const request = { data: new Uint8Array(32) };
  // windows: 0 warm-up (not kept), 1 idle, 2 attack; 3: stopped
  const windows = [new LatencyRecorder(), new LatencyRecorder(), new LatencyRecorder()];
  let window = 0;
  let failures = 0;
  let firstFailure: string | null = null;
  let callStartedAt: number | null = null;
  const loop = async (): Promise<void> => {
    while (window < 3) {
      const t0 = performance.now();
      callStartedAt = t0;
      try {
        await client.echo(request);
        windows[window]?.record(performance.now() - t0);
      } catch (err) {
        failures++;
        firstFailure ??= err instanceof Error ? err.message : String(err);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      callStartedAt = null;
    }
  };
  process.on('message', function dosCanaryOnParentMsg(m: ParentMsg) {
    if (m.t === 'stop') process.exit(0);
    if (m.t === 'start') void loop();
    if (m.t !== 'mark' || ++window < 3) return;
    // a call still waiting is the attack's worst sample so far
    const attack = windows[2]!;
    if (callStartedAt !== null) attack.record(performance.now() - callStartedAt);
    const [idleP50 = NaN, idleP99 = NaN] = windows[1]!.percentilesUs([0.5, 0.99]);
    const idleCount = windows[1]!.count;
    const attackCount = attack.count;
    const [p50 = NaN, p99 = NaN, max = NaN] = attack.percentilesUs([0.5, 0.99, 1]);
    const report: DosCanaryReport = {
      idle: { count: idleCount, p50Us: idleP50, p99Us: idleP99 },
      attack: { count: attackCount, p50Us: p50, p99Us: p99, maxUs: max },
      failures,
      firstFailure,
    };
    send({ t: 'dos-canary', report });
  });
  send({ t: 'ready', target: spec.target, memory: sampleMemory() });
}

function runAttacker(spec: DosSpec): void {
  const name = spec.attack;
  if (!isAttackName(name)) fail(new Error(`unknown attack '${name}'`));
  process.on('message', function dosAttackerOnParentMsg(m: ParentMsg) {
    if (m.t === 'stop') process.exit(0);
    if (m.t === 'attack') runAttack(name, spec.target, spec.seconds).then((report) => send({ t: 'dos-attacker', report }), fail);
  });
  send({ t: 'ready', target: spec.target, memory: sampleMemory() });
}

export async function runDos(spec: DosSpec): Promise<void> {
  if (spec.role === 'dos-server') return runServer(spec);
  if (spec.role === 'dos-canary') return runCanary(spec);
  runAttacker(spec);
}
