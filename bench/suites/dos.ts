// Suite `dos` (issue 10): the attacks of the issue's table against a default gridwire server, each in fresh processes
// (plain JS): the server (listen() with defaults, serving a msgpack echo; --expose-gc), a canary client on its own
// connection doing c=1 echo calls of { data: Uint8Array(32) }, and the attacker (roles/dos-attacks.ts, frames written
// by hand). Timeline per attack: canary warm-up, IDLE_MS of idle canary calls, then `--seconds` of attack with the
// canary calling on; the attacker then reads for up to 2 s to find how the server closed it. Per attack it reports
// the canary's p99 during the attack against its idle p99, the server's RSS growth (peak during the attack over the
// start, after GC) and what it still holds after GC at the end, the server's longest event-loop delay, how the
// attacker was closed (GOAWAY code and message read by the attacker, a closed socket, or not closed) and what the
// server logged, and whether the server crashed.
// Targets (PASS/FAIL): canary p99 during the attack <= max(3 x idle p99, 5 ms) with no failed call, RSS growth
// < 64 MiB, no crash. Processes are not pinned: three of them share the machine's CPUs.
import { setTimeout as sleep } from 'node:timers/promises';
import type { DosAttackReport, DosCanaryReport, DosServerReport, DosSpec } from '../messages.js';
import { compiledLaunch, Fleet, libraryOf, type Launch, type Worker } from '../processes.js';
import { fmt, markdownTable } from '../report.js';
import { median } from '../stats.js';
import { ATTACK_NAMES, ATTACKS, type AttackName } from '../roles/dos-attacks.js';
import type { SystemName } from '../systems/index.js';
import { attempt, describeAgainst, skipSuite, succeeded, suiteSystems, type Result, type SuiteOptions } from './common.js';

const DEFAULT_SECONDS = 3;
const DEFAULT_RUNS = 1;
const WARMUP_MS = 500;
const IDLE_MS = 1_000;
/** How long the server has to report after the attack before it counts as unresponsive. */
const REPORT_WAIT_MS = 10_000;
/** After the attacker let go, time for the server to close and log its connections before it reports. */
const LOG_SETTLE_MS = 200;
const CANARY_FACTOR = 3;
const CANARY_FLOOR_MS = 5;
const RSS_BUDGET_MIB = 64;
const MiB = 1024 * 1024;

interface Key {
  attack: AttackName;
  system: SystemName;
  run: number;
}

interface Figures {
  canary: DosCanaryReport;
  /** null: the server crashed or did not report. */
  server: DosServerReport | null;
  attacker: DosAttackReport;
  /** Why the server process ended early, if it did. */
  crashed: string | null;
  unresponsive: boolean;
}

const idleP99Ms = (f: Figures): number => f.canary.idle.p99Us / 1000;
const attackP99Ms = (f: Figures): number => f.canary.attack.p99Us / 1000;
const boundMs = (f: Figures): number => Math.max(CANARY_FACTOR * idleP99Ms(f), CANARY_FLOOR_MS);
const rssGrowthMiB = (f: Figures): number => (f.server === null ? NaN : (f.server.peakRss - f.server.before.rss) / MiB);
const retainedMiB = (f: Figures): number => (f.server === null ? NaN : (f.server.after.rss - f.server.before.rss) / MiB);

/** Why the run fails the targets ([] = PASS). */
function failures(f: Figures): string[] {
  const why: string[] = [];
  if (f.crashed !== null) why.push(`server crashed (${f.crashed})`);
  else if (f.unresponsive) why.push(`server did not report within ${REPORT_WAIT_MS / 1000} s`);
  if (!(attackP99Ms(f) <= boundMs(f))) why.push(`canary p99 ${fmt(attackP99Ms(f), 1)} ms > ${fmt(boundMs(f), 1)} ms`);
  if (f.canary.failures > 0) why.push(`${f.canary.failures} canary call(s) failed`);
  if (f.server !== null && !(rssGrowthMiB(f) < RSS_BUDGET_MIB)) why.push(`RSS +${fmt(rssGrowthMiB(f))} MiB`);
  return why;
}

/**
 * How the attacker's connections ended, e.g. "1/1 closed: GOAWAY ENHANCE_YOUR_CALM: too many pings..., noticed at
 * 0.4 s" (an attacker that never reads notices only when it reads, after the attack).
 */
function closedHow(a: DosAttackReport): string {
  if (a.connections === 0) return `no connection${a.error ? ` (${a.error})` : ''}`;
  if (a.closedByServer === 0) return `not closed (0/${a.connections})`;
  const goaways = Object.entries(a.goaways).sort((x, y) => y[1] - x[1]);
  const read = goaways.reduce((n, [, c]) => n + c, 0);
  let how = `${a.closedByServer}/${a.connections} closed`;
  if (goaways[0] !== undefined) how += `: GOAWAY ${goaways[0][0].slice(0, 70)}${goaways.length > 1 ? ` (+${goaways.length - 1} other)` : ''}`;
  if (read === 0) how += ' (no GOAWAY read)';
  else if (read < a.closedByServer) how += `, ${a.closedByServer - read} without a GOAWAY read`;
  return a.firstCloseMs === null ? how : `${how}, noticed at ${fmt(a.firstCloseMs / 1000, 1)} s`;
}

/** The GW_ERR codes of the server's warn lines, with counts: "GW_ERR_ENHANCE_YOUR_CALM x1". */
function serverLog(s: DosServerReport | null): string {
  if (s === null) return '-';
  if (s.warningCount === 0) return 'nothing';
  const codes = new Map<string, number>();
  for (const line of s.warnings) {
    const code = /GW_ERR_[A-Z_]+/.exec(line)?.[0] ?? 'other';
    codes.set(code, (codes.get(code) ?? 0) + 1);
  }
  const shown = [...codes].map(([c, n]) => `${c} x${n}`).join(', ');
  return s.warningCount > s.warnings.length ? `${shown} (${s.warningCount} lines)` : shown;
}

const describe = (f: Figures): string => {
  const why = failures(f);
  return (
    `canary p99 ${fmt(attackP99Ms(f), 2)} ms (idle ${fmt(idleP99Ms(f), 2)}, ${f.canary.attack.count} calls), RSS +${fmt(rssGrowthMiB(f), 1)} MiB, ` +
    `loop delay max ${fmt(f.server?.maxLoopDelayMs ?? NaN)} ms, attacker ${closedHow(f.attacker)}; ${why.length === 0 ? 'PASS' : `FAIL: ${why.join('; ')}`}`
  );
};

async function measure(launch: Launch, system: SystemName, attack: AttackName, seconds: number): Promise<Figures> {
  const fleet = new Fleet(WARMUP_MS + IDLE_MS + seconds * 1000 + 60_000, launch);
  const deadline = sleep(WARMUP_MS + IDLE_MS + seconds * 1000 + 30_000).then(() => {
    throw new Error('run timed out');
  });
  deadline.catch(() => undefined);
  try {
    const spec: Omit<DosSpec, 'role'> = { library: libraryOf(launch, system), target: '', attack, seconds };
    const server = fleet.spawn(`${system} dos server`, { ...spec, role: 'dos-server' }, { nodeArgs: ['--expose-gc'] });
    let crashed: string | null = null;
    server.failed.catch((err: Error) => (crashed ??= err.message));
    const { target } = await Promise.race([server.next('ready'), server.failed, deadline]);
    const canary = fleet.spawn(`${system} dos canary`, { ...spec, role: 'dos-canary', target });
    const attacker = fleet.spawn(`${attack} attacker`, { ...spec, role: 'dos-attacker', target, library: '' });
    // the server may crash under attack: only the canary, the attacker and time may stop the run
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, canary.failed, attacker.failed, deadline]);
    await guard(Promise.all([canary.next('ready'), attacker.next('ready')]));
    canary.send({ t: 'start' });
    await sleep(WARMUP_MS);
    canary.send({ t: 'mark' });
    await sleep(IDLE_MS);
    for (const w of [server, canary]) w.send({ t: 'mark' });
    attacker.send({ t: 'attack' });
    await sleep(seconds * 1000);
    for (const w of [server, canary]) w.send({ t: 'mark' });
    const { report: canaryReport } = await guard(canary.next('dos-canary'));
    const { report: attackerReport } = await guard(attacker.next('dos-attacker'));
    // the attacker has closed its connections: the server has logged why it closed them (when it did)
    await sleep(LOG_SETTLE_MS);
    server.send({ t: 'measure' });
    const serverReport = await serverReportOf(server);
    return {
      canary: canaryReport,
      server: serverReport ?? null,
      attacker: attackerReport,
      crashed,
      unresponsive: serverReport === undefined && crashed === null,
    };
  } finally {
    await fleet.close();
  }
}

/** The server's report; null when it exited, undefined when it did not answer in time. */
function serverReportOf(server: Worker): Promise<DosServerReport | null | undefined> {
  return Promise.race([
    server.next('dos-server').then((m) => m.report),
    server.exited.then(() => null),
    sleep(REPORT_WAIT_MS).then(() => undefined),
  ]);
}

export async function runDosSuite(options: SuiteOptions): Promise<object> {
  const title = 'dos: attacks on a default gridwire server in its own process, beside a canary doing c=1 echo calls';
  const { systems, notes: skipped } = await suiteSystems(options, ['gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite('dos', title, skipped[0] ?? 'gridwire not in --only');
  const seconds = options.seconds ?? DEFAULT_SECONDS;
  const runs = options.runs ?? DEFAULT_RUNS;
  const attacks = (options.attacks ?? ATTACK_NAMES) as AttackName[];
  const launch = compiledLaunch(options.against);
  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const attack of attacks) {
      for (const system of systems) {
        const label = `[dos ${run}/${runs}] ${attack.padEnd(21)} ${system.padEnd(13)}`;
        results.push(await attempt(label, { attack, system, run }, () => measure(launch, system, attack, seconds), describe));
      }
    }
  }

  const rows = attacks.flatMap((attack) => systems.map((system) => summarise(attack, system, results.filter((r) => r.attack === attack && r.system === system))));
  console.log(`\n${title}, ${runs} run(s) x ${seconds} s per attack`);
  for (const n of [...skipped, ...describeAgainst(options)]) console.log(`note: ${n}`);
  console.log(`note: fresh processes per attack (plain JS, unpinned); canary: idle p99 over ${IDLE_MS / 1000} s, then p99 during the attack (a call still waiting at its end counts)`);
  console.log(`note: targets: canary p99 <= max(${CANARY_FACTOR} x idle p99, ${CANARY_FLOOR_MS} ms) with no failed call, server RSS growth < ${RSS_BUDGET_MIB} MiB, no crash`);
  console.log('note: RSS growth = highest RSS during the attack - RSS after GC at its start; retained = RSS after GC at its end - the same');
  console.log('note: a c=1 canary makes one call per freeze of the server: a long freeze shows in "max ms" and "loop delay ms" more than in p99\n');
  console.log(formatRows(rows));
  console.log('\nattacks:');
  for (const attack of attacks) console.log(`  ${attack.padEnd(21)} ${ATTACKS[attack].title}`);
  console.log('\nverdicts (medians over runs):');
  for (const r of rows) console.log(`  ${r.verdict.padEnd(4)} ${r.attack.padEnd(21)} ${r.system.padEnd(13)} ${r.why.join('; ')}`);
  const passed = rows.filter((r) => r.verdict === 'PASS').length;
  console.log(`\n${passed}/${rows.length} PASS`);
  return {
    bench: 'dos',
    summary: rows.map(({ perRun: _perRun, ...r }) => r),
    runs: results,
    config: { seconds, runs, warmupMs: WARMUP_MS, idleMs: IDLE_MS, canaryFactor: CANARY_FACTOR, canaryFloorMs: CANARY_FLOOR_MS, rssBudgetMiB: RSS_BUDGET_MIB, attacks, against: options.against },
  };
}

interface Row {
  attack: AttackName;
  system: SystemName;
  runsOk: number;
  runs: number;
  idleP99Ms: number;
  attackP99Ms: number;
  boundMs: number;
  /** The slowest canary call during the attack (a long freeze of the server shows here more than in its p99). */
  attackMaxMs: number;
  canaryCalls: number;
  canaryFailures: number;
  rssGrowthMiB: number;
  retainedMiB: number;
  maxLoopDelayMs: number;
  closed: string;
  serverLog: string;
  crashed: string | null;
  verdict: 'PASS' | 'FAIL';
  why: string[];
  perRun: Result<Key, Figures>[];
}

function summarise(attack: AttackName, system: SystemName, perRun: Result<Key, Figures>[]): Row {
  const ok = succeeded(perRun);
  const med = (pick: (f: Figures) => number): number => median(ok.map(pick));
  const crashed = ok.find((r) => r.crashed !== null)?.crashed ?? null;
  const last = ok.at(-1);
  const row: Row = {
    attack, system, runsOk: ok.length, runs: perRun.length,
    idleP99Ms: med(idleP99Ms), attackP99Ms: med(attackP99Ms), boundMs: med(boundMs), attackMaxMs: med((f) => f.canary.attack.maxUs / 1000),
    canaryCalls: med((f) => f.canary.attack.count), canaryFailures: med((f) => f.canary.failures),
    rssGrowthMiB: med(rssGrowthMiB), retainedMiB: med(retainedMiB), maxLoopDelayMs: med((f) => f.server?.maxLoopDelayMs ?? NaN),
    closed: last === undefined ? '-' : closedHow(last.attacker),
    serverLog: last === undefined ? '-' : serverLog(last.server),
    crashed, verdict: 'FAIL', why: [], perRun,
  };
  const why: string[] = [];
  if (ok.length < perRun.length) why.push(`${perRun.length - ok.length} run(s) failed to measure`);
  if (crashed !== null) why.push(`server crashed (${crashed})`);
  if (ok.some((r) => r.unresponsive)) why.push('server unresponsive after the attack');
  if (!(row.attackP99Ms <= row.boundMs)) why.push(`canary p99 ${fmt(row.attackP99Ms, 1)} ms > bound ${fmt(row.boundMs, 1)} ms`);
  if (row.canaryFailures > 0) why.push('canary calls failed');
  if (!(row.rssGrowthMiB < RSS_BUDGET_MIB)) why.push(`RSS growth ${fmt(row.rssGrowthMiB)} MiB >= ${RSS_BUDGET_MIB} MiB`);
  row.why = why;
  row.verdict = why.length === 0 && ok.length > 0 ? 'PASS' : 'FAIL';
  return row;
}

function formatRows(rows: Row[]): string {
  const head = [
    'attack', 'system', 'idle p99 ms', 'attack p99 ms', 'p99 / idle', 'bound ms', 'max ms', 'canary calls', 'RSS growth MiB', 'retained MiB',
    'loop delay ms', 'attacker closed', 'server log', 'crash', 'verdict',
  ];
  const body = rows.map((r) => [
    r.attack, r.system, fmt(r.idleP99Ms, 2), fmt(r.attackP99Ms, 2), `${fmt(r.attackP99Ms / r.idleP99Ms, 1)}x`, fmt(r.boundMs, 1),
    fmt(r.attackMaxMs), fmt(r.canaryCalls), fmt(r.rssGrowthMiB, 1), fmt(r.retainedMiB, 1), fmt(r.maxLoopDelayMs), r.closed, r.serverLog,
    r.crashed === null ? 'no' : 'CRASHED', r.verdict,
  ]);
  return markdownTable(head, body, 2);
}
