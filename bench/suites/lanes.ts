// Suite `lanes`: does the Mesh's data lane (src/mesh/mesh.ts, `dataLane: true`) keep small calls fast beside a bulk
// transfer? Two Mesh nodes in two pinned processes (bench/lanes-worker.ts: client node `a`, server node `b`, each
// listening and listing the other) on loopback TCP. A c=1 echo of 32 raw bytes from a to b, its p50/p99 measured in
// three conditions, each in fresh processes, alternated (order rotated) within every run:
//   idle           no other traffic (dataLane: false: one connection)
//   same conn      beside a download from b that saturates the pair's one connection (dataLane: false)
//   data lane      beside the same download, which the mesh routes over the pair's `data` connection (dataLane: true)
// The check is the per-run ratio p99(beside)/p99(idle), target <= 2x (issue 3). The server counts which lane each
// call arrived on; a run where the download did not take the lane its condition asks for fails.
import { fileURLToPath } from 'node:url';
import { runPair } from '../harness.js';
import type { ScenarioReport } from '../protocol.js';
import { median } from '../stats.js';
import { fmt, markdownTable } from '../table.js';
import {
  checkTransfer, describeEcho, echoFigures, errorMessage, FAILED_ECHO, formatChecks, medianEcho, pickPorts, ratioCheck,
  receivedMiBps, skipSuite, type EchoFigures, type RatioCheck, type SuiteOptions,
} from './suite.js';

const WORKER = fileURLToPath(new URL('../lanes-worker.ts', import.meta.url));
const CONDITIONS = [
  { name: 'idle', dataLane: false, download: false },
  { name: 'same conn', dataLane: false, download: true },
  { name: 'data lane', dataLane: true, download: true },
] as const;
type Condition = (typeof CONDITIONS)[number];
type ConditionName = Condition['name'];
const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;
const P99_TARGET = 2;
/** Hard limit per run beyond warmup and window: two tsx start-ups, the mesh connecting, the clean end, shutdown. */
const RUN_OVERHEAD_LIMIT_MS = 30_000;

/** downloadMiBps is NaN when there is no download. */
interface LanesResult extends EchoFigures {
  condition: ConditionName;
  run: number;
  ok: boolean;
  error?: string;
  /** Lane each call kind arrived on at the server, e.g. { echoOn_control: 9120, downloadOn_data: 1 }. */
  lanes: Record<string, number>;
}

/** Throws unless every call took the lane the condition asks for. */
function checkLanes(c: Condition, server: ScenarioReport): void {
  const f = server.facts;
  const echoElsewhere = Object.keys(f).filter((k) => k.startsWith('echoOn_') && k !== 'echoOn_control');
  if (echoElsewhere.length > 0) throw new Error(`echo calls off the control lane: ${JSON.stringify(f)}`);
  const want = c.download ? (c.dataLane ? 'downloadOn_data' : 'downloadOn_control') : undefined;
  const downloads = Object.entries(f).filter(([k]) => k.startsWith('downloadOn_'));
  const ok = want === undefined ? downloads.length === 0 : downloads.length === 1 && f[want] === 1;
  if (!ok) throw new Error(`download expected on ${want ?? 'no lane'}, server saw ${JSON.stringify(f)}`);
}

async function runCondition(c: Condition, run: number, seconds: number, pin: boolean): Promise<LanesResult> {
  const [serverPort, clientPort] = await pickPorts(2);
  const serverUrl = `tcp://127.0.0.1:${serverPort}`;
  const clientUrl = `tcp://127.0.0.1:${clientPort}`;
  const lane = c.dataLane ? '1' : '0';
  const { client, server } = await runPair({
    label: `lanes ${c.name}`,
    worker: WORKER,
    serverArgs: ['server', serverUrl, clientUrl, lane],
    clientArgs: () => ['client', clientUrl, serverUrl, lane, c.download ? '1' : '0'],
    waitArmed: true,
    warmupMs: WARMUP_MS,
    windowMs: seconds * 1000,
    pin,
    timeoutMs: WARMUP_MS + seconds * 1000 + RUN_OVERHEAD_LIMIT_MS,
  });
  if (client.role !== 'scenario' || server.role !== 'scenario') throw new Error('expected scenario reports');
  if (c.download) checkTransfer(server, client);
  checkLanes(c, server);
  const figures = echoFigures(client, server, c.download ? receivedMiBps(client) : NaN);
  return { condition: c.name, run, ok: true, ...figures, lanes: server.facts };
}

export async function runLanesSuite(options: SuiteOptions): Promise<object> {
  const title = 'Mesh data lane: unary echo p50/p99, 32 bytes, c=1, idle vs. beside a bulk download on the same connection vs. on the data lane';
  if (!options.systems.includes('gridwire')) return skipSuite('lanes', title, 'gridwire not in --only');
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;

  const results: LanesResult[] = [];
  for (let run = 1; run <= runs; run++) {
    // rotate the order run by run, so no condition always runs first (or last) on a machine whose speed drifts
    const order = CONDITIONS.map((_, i) => CONDITIONS[(i + run - 1) % CONDITIONS.length]!);
    for (const c of order) {
      const label = `[lanes ${run}/${runs}] ${c.name.padEnd(9)}`;
      try {
        const r = await runCondition(c, run, seconds, options.pin);
        results.push(r);
        console.error(`${label} ${describeEcho(r)}  lanes ${JSON.stringify(r.lanes)}`);
      } catch (err) {
        const error = errorMessage(err);
        results.push({ condition: c.name, run, ok: false, error, ...FAILED_ECHO, lanes: {} });
        console.error(`${label} FAILED: ${error}`);
      }
    }
  }

  const pick = (run: number, name: ConditionName, f: (r: LanesResult) => number): number => {
    const r = results.find((x) => x.ok && x.run === run && x.condition === name);
    return r === undefined ? NaN : f(r);
  };
  const perRun = (f: (run: number) => number): number[] => Array.from({ length: runs }, (_, i) => f(i + 1));
  const p99Ratio = (name: ConditionName) => (run: number): number => pick(run, name, (r) => r.p99Us) / pick(run, 'idle', (r) => r.p99Us);
  const ratios: Record<ConditionName, number[]> = {
    idle: perRun(() => 1),
    'same conn': perRun(p99Ratio('same conn')),
    'data lane': perRun(p99Ratio('data lane')),
  };
  const checks: Record<string, RatioCheck> = {
    p99_same_connection_vs_idle: ratioCheck(ratios['same conn'], '<=', P99_TARGET),
    p99_data_lane_vs_idle: ratioCheck(ratios['data lane'], '<=', P99_TARGET),
  };
  const throughputPerRun = perRun((run) => pick(run, 'data lane', (r) => r.downloadMiBps) / pick(run, 'same conn', (r) => r.downloadMiBps));
  const throughput = { median: median(throughputPerRun), perRun: throughputPerRun.filter(Number.isFinite) };
  const rows = CONDITIONS.map((c) => summarise(c.name, results.filter((r) => r.condition === c.name), ratios[c.name]));

  console.log(`\n${title}, ${runs} run(s) x ${seconds} s window`);
  for (const n of options.notes) console.log(`note: ${n}`);
  console.log('note: two Mesh nodes (a: client, the pair\'s dialer; b: server), one process each, loopback TCP; fresh processes per condition');
  console.log(`\n${formatRows(rows)}\n`);
  console.log('p99 beside the download / p99 idle, within the same run (median over runs):');
  console.log(formatChecks(checks));
  const verdict = checks.p99_data_lane_vs_idle!.met;
  console.log(`  data lane meets the <= ${P99_TARGET}x target: ${verdict === null ? 'not measured' : verdict ? 'YES' : 'NO'}`);
  console.log(
    `download MiB/s, data lane / same connection: ${fmt(throughput.median, 2)}x` +
      ` (per run: ${throughput.perRun.map((x) => x.toFixed(2)).join(', ')})`,
  );
  const config = { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin, echoBytes: 32, chunkBytes: 64 * 1024 };
  return { bench: 'lanes', checks, downloadDataLaneVsSameConn: throughput, results: rows, config };
}

/** The figures are medians over the runs that succeeded. */
interface LanesRow extends EchoFigures {
  condition: ConditionName;
  runsOk: number;
  runs: number;
  /** Median of the per-run p99 / idle p99 ratios. */
  p99VsIdle: number;
  perRun: LanesResult[];
}

function summarise(condition: ConditionName, perRun: LanesResult[], ratios: number[]): LanesRow {
  const ok = perRun.filter((r) => r.ok);
  return { condition, runsOk: ok.length, runs: perRun.length, ...medianEcho(ok), p99VsIdle: median(ratios), perRun };
}

function formatRows(rows: LanesRow[]): string {
  const head = ['condition', 'calls/s', 'p50 µs', 'p99 µs', 'p99 per run µs', 'p99 / idle', 'download MiB/s', 'CPU cli/srv %', 'runs ok'];
  const body = rows.map((r) => [
    r.condition,
    fmt(r.callsPerSec),
    fmt(r.p50Us),
    fmt(r.p99Us),
    r.perRun.map((x) => fmt(x.p99Us)).join(', '),
    r.condition === 'idle' ? '' : Number.isFinite(r.p99VsIdle) ? `${r.p99VsIdle.toFixed(2)}x` : '-',
    fmt(r.downloadMiBps),
    `${fmt(r.cpuClientPct)} / ${fmt(r.cpuServerPct)}`,
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 1);
}
