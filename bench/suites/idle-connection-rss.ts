// Suite `idle-connection-rss`: server memory per idle connection. One server process (plain JS, --expose-gc) accepts
// N idle connections from CLIENTS client processes (roles/conn.ts); its RSS after forced GCs is read with none, with
// half, and with all of them open. gridwire connections are connect() sessions with the handshake done and no call,
// default options (keepalive after 30 s of silence: the connections stay idle for the whole measurement); raw ones
// are node:net sockets with a 'data' listener and nothing else. The systems run in the same run, in fresh processes,
// one after the other (order reversed on even runs), and the ratio gridwire/raw (and gridwire/gridwire@base with
// --against) is taken within a run.
//   per connection   (RSS all - RSS none) / N           the figure with its target
//   marginal         (RSS all - RSS half) / (N / 2)     without one-time costs (code, first-use allocations)
import { readFileSync } from 'node:fs';
import type { MemorySample } from '../messages.js';
import { compiledLaunch, Fleet, libraryOf, type Launch, type Worker } from '../processes.js';
import { check, fmt, formatChecks, markdownTable, type Check } from '../report.js';
import { isGridwire, type SystemName } from '../systems/index.js';
import {
  attempt, checkPrefix, describeAgainst, figureOf, perRun, sameRunRatios, skipSuite, suiteSystems, type Result,
  type SuiteOptions,
} from './common.js';

const WANTED_CONNECTIONS = 2000;
const CLIENTS = 2;
const DEFAULT_RUNS = 2;
const TARGET_KIB = 64;
const RUN_TIMEOUT_MS = 120_000;
/** File descriptors kept free in each process beyond its connections (stdio, IPC, listener, libuv, node). */
const FD_SLACK = 100;
const KiB = 1024;

interface Key {
  system: SystemName;
  run: number;
}

interface Figures {
  connections: number;
  /** Server memory after GC with none, half and all of the connections open. */
  none: MemorySample;
  half: MemorySample;
  all: MemorySample;
  /** Client processes' RSS growth summed, after GC, bytes. */
  clientRssGrowth: number;
  /** Time for the clients to open all connections (slowest client, both halves), ms. */
  openMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Asks the server for its memory until it holds `expected` connections (accepts and handshakes trail the clients). */
async function measureAt(fleet: Fleet, server: Worker, expected: number): Promise<MemorySample> {
  for (let attempt = 0; ; attempt++) {
    server.send({ t: 'measure' });
    const m = await fleet.guard(server.next('measured'));
    if (m.connections === expected) return m.memory;
    if (attempt >= 100) throw new Error(`server holds ${m.connections} connections, expected ${expected}`);
    await sleep(50);
  }
}

async function measure(launch: Launch, system: SystemName, n: number): Promise<Figures> {
  const fleet = new Fleet(RUN_TIMEOUT_MS, launch);
  try {
    const library = libraryOf(launch, system);
    const nodeArgs = ['--expose-gc'];
    const server = fleet.spawn(`${system} conn server`, { role: 'conn-server', system, library, url: '' }, { nodeArgs });
    const { target: url } = await fleet.guard(server.next('ready'));
    const clients = Array.from({ length: CLIENTS }, (_, i) =>
      fleet.spawn(`${system} conn client ${i}`, { role: 'conn-client', system, library, url }, { nodeArgs }),
    );
    const clientReady = await fleet.guard(Promise.all(clients.map((c) => c.next('ready'))));
    const none = await measureAt(fleet, server, 0);
    let openMs = 0;
    let opened = 0;
    const open = async (total: number): Promise<MemorySample[]> => {
      const shares = clients.map((_, i) => Math.floor(total / CLIENTS) + (i < total % CLIENTS ? 1 : 0));
      clients.forEach((c, i) => c.send({ t: 'open', count: shares[i] ?? 0 }));
      const done = await fleet.guard(Promise.all(clients.map((c) => c.next('opened'))));
      openMs += Math.max(...done.map((d) => d.ms));
      opened += total;
      return done.map((d) => d.memory);
    };
    await open(n / 2);
    const half = await measureAt(fleet, server, opened);
    const clientEnd = await open(n - n / 2);
    const all = await measureAt(fleet, server, opened);
    const clientRssGrowth = clientEnd.reduce((s, m, i) => s + m.rss - (clientReady[i]?.memory.rss ?? NaN), 0);
    return { connections: n, none, half, all, clientRssGrowth, openMs };
  } finally {
    await fleet.close();
  }
}

type Pick = (m: MemorySample) => number;
const perConnKiB = (r: Figures, pick: Pick): number => (pick(r.all) - pick(r.none)) / r.connections / KiB;
const marginalKiB = (r: Figures, pick: Pick): number => (pick(r.all) - pick(r.half)) / (r.connections - r.connections / 2) / KiB;
const rss: Pick = (m) => m.rss;
const heapUsed: Pick = (m) => m.heapUsed;
const external: Pick = (m) => m.external;

const describe = (r: Figures): string =>
  `${r.connections} connections opened in ${fmt(r.openMs)} ms; server RSS ${fmt(r.none.rss / KiB / KiB, 1)} -> ` +
  `${fmt(r.all.rss / KiB / KiB, 1)} MiB: ${fmt(perConnKiB(r, rss), 2)} KiB per connection ` +
  `(marginal ${fmt(marginalKiB(r, rss), 2)}, heap ${fmt(perConnKiB(r, heapUsed), 2)})`;

/** The soft limit on open files of this process (inherited by the workers), or null when unknown. */
function openFilesLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === 'unlimited') return Infinity;
    const n = Number(soft);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** How many connections the fd limit allows (server holds N, each client N / CLIENTS), and a note when lowered. */
function connectionCount(): { n: number; note: string } {
  const limit = openFilesLimit();
  if (limit === null) return { n: WANTED_CONNECTIONS, note: `open files limit unknown; ${WANTED_CONNECTIONS} connections` };
  const fits = Math.floor((limit - FD_SLACK) / 2) * 2;
  if (fits >= WANTED_CONNECTIONS) return { n: WANTED_CONNECTIONS, note: `open files limit ${limit}: ${WANTED_CONNECTIONS} connections` };
  const n = Math.max(2, Math.floor(fits / 100) * 100 || fits);
  return { n, note: `open files limit ${limit} (ulimit -n): LOWERED to ${n} connections (wanted ${WANTED_CONNECTIONS})` };
}

export async function runIdleConnectionRssSuite(options: SuiteOptions): Promise<object> {
  const title = 'server RSS per idle connection, one server process, loopback TCP';
  const { systems, notes: skipped } = await suiteSystems(options, ['raw', 'gridwire', 'gridwire@base']);
  if (!systems.includes('gridwire')) return skipSuite('idle-connection-rss', title, skipped[0] ?? 'gridwire not in --only');
  const runs = options.runs ?? DEFAULT_RUNS;
  const launch = compiledLaunch(options.against);
  const { n, note } = connectionCount();
  console.error(`bench: idle-connection-rss: ${note}`);
  const results: Result<Key, Figures>[] = [];
  for (let run = 1; run <= runs; run++) {
    const order = run % 2 === 1 ? systems : [...systems].reverse();
    for (const system of order) {
      const label = `[idle-connection-rss ${run}/${runs}] ${system.padEnd(13)}`;
      results.push(await attempt(label, { system, run }, () => measure(launch, system, n), describe));
    }
  }

  const perConn = (r: Figures): number => perConnKiB(r, rss);
  const ratio = (other: SystemName): Check => check(sameRunRatios(results, runs, { system: 'gridwire' }, { system: other }, perConn), 'x');
  const checks: Record<string, Check> = {};
  for (const system of systems.filter(isGridwire)) {
    const values = perRun(runs, (run) => figureOf(results, run, { system }, perConn));
    checks[`${checkPrefix(system)}gridwire_rss_per_connection`] = check(values, 'KiB', { sense: '<', value: TARGET_KIB });
  }
  if (systems.includes('raw')) checks.gridwire_over_raw = ratio('raw');
  if (systems.includes('gridwire@base')) checks.gridwire_over_base = ratio('gridwire@base');

  console.log(`\n${title}, ${runs} run(s)`);
  for (const n of [...skipped, ...describeAgainst(options)]) console.log(`note: ${n}`);
  console.log(`note: ${note}, opened by ${CLIENTS} client processes; server and clients plain JS with --expose-gc, unpinned`);
  console.log('note: memory read after forced GCs with none, half and all connections open; gridwire with default options\n');
  console.log(formatResults(results));
  console.log('\nchecks (median over runs; ratios taken within the same run):');
  console.log(formatChecks(checks));
  return {
    bench: 'idle-connection-rss',
    checks,
    runs: results.map((r) =>
      r.ok
        ? {
            ...r,
            rssPerConnKiB: perConnKiB(r, rss),
            rssMarginalKiB: marginalKiB(r, rss),
            heapPerConnKiB: perConnKiB(r, heapUsed),
            externalPerConnKiB: perConnKiB(r, external),
          }
        : r,
    ),
    config: { connections: n, wanted: WANTED_CONNECTIONS, clients: CLIENTS, runs, openFilesLimit: openFilesLimit(), against: options.against },
  };
}

function formatResults(results: Result<Key, Figures>[]): string {
  const head = [
    'run', 'system', 'server RSS none -> all MiB', 'RSS KiB/conn', 'marginal KiB/conn', 'heap KiB/conn',
    'external KiB/conn', 'client RSS KiB/conn', 'open ms',
  ];
  const mib = (m: MemorySample): string => fmt(m.rss / KiB / KiB, 1);
  const body = results.map((r) =>
    r.ok
      ? [
          String(r.run), r.system, `${mib(r.none)} -> ${mib(r.all)}`, fmt(perConnKiB(r, rss), 2), fmt(marginalKiB(r, rss), 2),
          fmt(perConnKiB(r, heapUsed), 2), fmt(perConnKiB(r, external), 2), fmt(r.clientRssGrowth / r.connections / KiB, 2),
          fmt(r.openMs),
        ]
      : [String(r.run), r.system, `FAILED: ${r.error}`, '', '', '', '', '', ''],
  );
  return markdownTable(head, body, 2);
}
