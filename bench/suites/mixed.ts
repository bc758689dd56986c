// Suite `mixed` (issue 3, figure 2): does bulk traffic hurt small calls on the same connection? gridwire's c=1
// 32-byte unary echo p99 on an otherwise idle connection, then while a download saturates that SAME connection
// (the echo loop and the download reader share the client process, as they would in an application). The two
// variants alternate within each run, and the check is the per-run ratio of the two p99s.
import type { ScenarioReport } from '../protocol.js';
import { fmt, markdownTable } from '../table.js';
import {
  checkTransfer, describeEcho, echoFigures, errorMessage, FAILED_ECHO, formatChecks, medianEcho, probeGridwireStreams,
  ratioCheck, receivedMiBps, runScenario, skipSuite, type EchoFigures, type RatioCheck, type SuiteOptions,
} from './suite.js';

const VARIANTS = [
  { name: 'idle', scenario: 'unary-idle' },
  { name: 'under bulk download', scenario: 'unary-under-bulk' },
] as const;
type Variant = (typeof VARIANTS)[number];
const WARMUP_MS = 500;
const DEFAULT_SECONDS = 2;
const DEFAULT_RUNS = 2;
const P99_TARGET = 2;

/** downloadMiBps is 0 on the idle connection. */
interface MixedResult extends EchoFigures {
  variant: Variant['name'];
  run: number;
  ok: boolean;
  error?: string;
}

function toResult(variant: Variant, run: number, client: ScenarioReport, server: ScenarioReport): MixedResult {
  if (variant.scenario === 'unary-under-bulk') checkTransfer(server, client);
  return { variant: variant.name, run, ok: true, ...echoFigures(client, server, receivedMiBps(client)) };
}

export async function runMixedSuite(options: SuiteOptions): Promise<object> {
  const title = 'unary echo p99, 32 bytes, c=1, on an idle gridwire connection vs. beside a bulk download on the same one';
  const why = options.systems.includes('gridwire') ? await probeGridwireStreams() : 'gridwire not in --only';
  if (why !== null) return skipSuite('mixed', title, why, 'mixed-unary-under-bulk');
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;

  const results: MixedResult[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const variant of VARIANTS) {
      const label = `[mixed ${run}/${runs}] ${variant.name.padEnd(19)}`;
      try {
        const { client, server } = await runScenario('gridwire', variant.scenario, {
          warmupMs: WARMUP_MS, windowMs: seconds * 1000, pin: options.pin,
        });
        const r = toResult(variant, run, client, server);
        results.push(r);
        console.error(`${label} ${describeEcho(r)}`);
      } catch (err) {
        const error = errorMessage(err);
        results.push({ variant: variant.name, run, ok: false, error, ...FAILED_ECHO });
        console.error(`${label} FAILED: ${error}`);
      }
    }
  }

  const rows = VARIANTS.map((v) => summarise(results.filter((r) => r.variant === v.name), v.name));
  const p99 = (run: number, variant: Variant): number =>
    results.find((r) => r.ok && r.run === run && r.variant === variant.name)?.p99Us ?? NaN;
  const [idle, loaded] = VARIANTS;
  const perRun = Array.from({ length: runs }, (_, i) => p99(i + 1, loaded) / p99(i + 1, idle));
  const checks: Record<string, RatioCheck> = { p99_under_bulk_vs_idle: ratioCheck(perRun, '<=', P99_TARGET) };

  console.log(`\n${title}, ${runs} run(s) x ${seconds} s window`);
  for (const n of options.notes) console.log(`note: ${n}`);
  console.log(`\n${formatRows(rows)}\n`);
  console.log('p99 beside the download / p99 on the idle connection, within the same run (median over runs):');
  console.log(formatChecks(checks));
  const config = { seconds, runs, warmupMs: WARMUP_MS, pinned: options.pin };
  return { bench: 'mixed-unary-under-bulk', checks, results: rows, config };
}

/** The figures are medians over the runs that succeeded. */
interface MixedRow extends EchoFigures {
  variant: Variant['name'];
  runsOk: number;
  runs: number;
  perRun: MixedResult[];
}

function summarise(perRun: MixedResult[], variant: Variant['name']): MixedRow {
  const ok = perRun.filter((r) => r.ok);
  return { variant, runsOk: ok.length, runs: perRun.length, ...medianEcho(ok), perRun };
}

function formatRows(rows: MixedRow[]): string {
  const head = ['connection', 'calls/s', 'p50 µs', 'p99 µs', 'download MiB/s', 'CPU cli/srv %', 'runs ok'];
  const body = rows.map((r) => [
    r.variant,
    fmt(r.callsPerSec),
    fmt(r.p50Us),
    fmt(r.p99Us),
    fmt(r.downloadMiBps),
    `${fmt(r.cpuClientPct)} / ${fmt(r.cpuServerPct)}`,
    `${r.runsOk}/${r.runs}`,
  ]);
  return markdownTable(head, body, 1);
}
