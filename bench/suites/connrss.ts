// Suite `connrss`: server memory per idle connection. One server process (plain JS, --expose-gc) accepts N idle
// connections from CLIENTS client processes; its RSS after forced GCs is read with none, with half, and with all of
// them open. gridwire connections are connect() sessions with the handshake done and no call, default options
// (keepalive after 30 s of silence: the connections stay idle for the whole measurement); raw ones are node:net
// sockets with a 'data' listener and nothing else. Both systems run in the same run, in fresh processes, one after
// the other (order alternating by run), and the ratio gridwire/raw is taken within a run.
//   per connection   (RSS all - RSS none) / N           the figure with its target
//   marginal         (RSS all - RSS half) / (N / 2)     without one-time costs (code, first-use allocations)
import { compileFleetWorkers, Fleet, openFilesLimit, type Child } from '../fleet/procs.js';
import type { FleetMemory } from '../fleet/messages.js';
import { median } from '../stats.js';
import { fmt, markdownTable } from '../table.js';
import { errorMessage, skipSuite, type SuiteOptions } from './suite.js';

const WANTED_CONNECTIONS = 2000;
const CLIENTS = 2;
const DEFAULT_RUNS = 2;
const TARGET_KIB = 64;
const RUN_TIMEOUT_MS = 120_000;
/** File descriptors kept free in each process beyond its connections (stdio, IPC, listener, libuv, node). */
const FD_SLACK = 100;
const SYSTEMS = ['raw', 'gridwire'] as const;
type ConnSystem = (typeof SYSTEMS)[number];

interface ConnResult {
  system: ConnSystem;
  run: number;
  ok: boolean;
  error?: string;
  connections: number;
  /** Server memory after GC with none, half and all of the connections open. */
  none: FleetMemory | null;
  half: FleetMemory | null;
  all: FleetMemory | null;
  /** Client processes' RSS growth summed, after GC, bytes. */
  clientRssGrowth: number;
  /** Time for the clients to open all connections (slowest client, both halves), ms. */
  openMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const KiB = 1024;

/** Asks the server for its memory until it holds `expected` connections (accepts and handshakes trail the clients). */
async function measureAt(fleet: Fleet, server: Child, expected: number): Promise<FleetMemory> {
  for (let attempt = 0; ; attempt++) {
    server.send({ t: 'measure' });
    const m = await fleet.guard(server.next('measured'));
    if (m.connections === expected) return m.memory;
    if (attempt >= 100) throw new Error(`server holds ${m.connections} connections, expected ${expected}`);
    await sleep(50);
  }
}

async function runConnOnce(system: ConnSystem, run: number, n: number, script: string): Promise<ConnResult> {
  const fleet = new Fleet(RUN_TIMEOUT_MS);
  try {
    const server = fleet.spawn(`${system} conn server`, script, ['server', system], ['--expose-gc']);
    const { url } = await fleet.guard(server.next('ready'));
    const clients = Array.from({ length: CLIENTS }, (_, i) =>
      fleet.spawn(`${system} conn client ${i}`, script, ['client', system, url], ['--expose-gc']),
    );
    const clientReady = await fleet.guard(Promise.all(clients.map((c) => c.next('ready'))));
    const none = await measureAt(fleet, server, 0);
    let openMs = 0;
    let opened = 0;
    const open = async (total: number): Promise<FleetMemory[]> => {
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
    return { system, run, ok: true, connections: n, none, half, all, clientRssGrowth, openMs };
  } finally {
    await fleet.close();
  }
}

const perConnKiB = (r: ConnResult, pick: (m: FleetMemory) => number): number =>
  r.all && r.none ? (pick(r.all) - pick(r.none)) / r.connections / KiB : NaN;
const marginalKiB = (r: ConnResult, pick: (m: FleetMemory) => number): number =>
  r.all && r.half ? (pick(r.all) - pick(r.half)) / (r.connections - r.connections / 2) / KiB : NaN;
const rss = (m: FleetMemory): number => m.rss;
const heapUsed = (m: FleetMemory): number => m.heapUsed;
const external = (m: FleetMemory): number => m.external;

const describe = (r: ConnResult): string =>
  `${r.connections} connections opened in ${fmt(r.openMs)} ms; server RSS ${fmt((r.none?.rss ?? NaN) / KiB / KiB, 1)} -> ` +
  `${fmt((r.all?.rss ?? NaN) / KiB / KiB, 1)} MiB: ${fmt(perConnKiB(r, rss), 2)} KiB per connection ` +
  `(marginal ${fmt(marginalKiB(r, rss), 2)}, heap ${fmt(perConnKiB(r, heapUsed), 2)})`;

/** How many connections the fd limit allows (server holds N, each client N / CLIENTS), and a note when lowered. */
function connectionCount(): { n: number; note: string } {
  const limit = openFilesLimit();
  if (limit === null) return { n: WANTED_CONNECTIONS, note: `open files limit unknown; ${WANTED_CONNECTIONS} connections` };
  const fits = Math.floor((limit - FD_SLACK) / 2) * 2;
  if (fits >= WANTED_CONNECTIONS) return { n: WANTED_CONNECTIONS, note: `open files limit ${limit}: ${WANTED_CONNECTIONS} connections` };
  const n = Math.max(2, Math.floor(fits / 100) * 100 || fits);
  return { n, note: `open files limit ${limit} (ulimit -n): LOWERED to ${n} connections (wanted ${WANTED_CONNECTIONS})` };
}

export async function runConnRssSuite(options: SuiteOptions): Promise<object> {
  const title = 'server RSS per idle connection, one server process, loopback TCP';
  const runs = options.runs ?? DEFAULT_RUNS;
  let script: string;
  try {
    script = `${compileFleetWorkers()}conn-worker.js`;
  } catch (err) {
    return skipSuite('connrss', title, errorMessage(err));
  }
  const { n, note } = connectionCount();
  console.error(`bench: connrss: ${note}`);
  const results: ConnResult[] = [];
  for (let run = 1; run <= runs; run++) {
    const order = run % 2 === 1 ? SYSTEMS : [...SYSTEMS].reverse();
    for (const system of order) {
      const label = `[connrss ${run}/${runs}] ${system.padEnd(8)}`;
      try {
        const r = await runConnOnce(system, run, n, script);
        console.error(`${label} ${describe(r)}`);
        results.push(r);
      } catch (err) {
        const error = errorMessage(err);
        console.error(`${label} FAILED: ${error}`);
        results.push({ system, run, ok: false, error, connections: n, none: null, half: null, all: null, clientRssGrowth: NaN, openMs: NaN });
      }
    }
  }

  const find = (system: ConnSystem, run: number): ConnResult | undefined => results.find((r) => r.ok && r.system === system && r.run === run);
  const ratios: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const g = find('gridwire', run);
    const raw = find('raw', run);
    if (g && raw) ratios.push(perConnKiB(g, rss) / perConnKiB(raw, rss));
  }
  const gridwirePerConn = median(results.filter((r) => r.ok && r.system === 'gridwire').map((r) => perConnKiB(r, rss)));
  const met = Number.isFinite(gridwirePerConn) ? gridwirePerConn < TARGET_KIB : null;

  console.log(`\n${title}, ${runs} run(s)`);
  console.log(`note: ${note}, opened by ${CLIENTS} client processes; server and clients plain JS with --expose-gc, unpinned`);
  console.log('note: memory read after forced GCs with none, half and all connections open; gridwire with default options\n');
  console.log(formatResults(results));
  console.log('\nchecks (median over runs):');
  const verdict = met === null ? '' : met ? '  MET' : '  NOT MET';
  console.log(`  gridwire_rss_per_connection  ${fmt(gridwirePerConn, 2).padStart(8)} KiB  target < ${TARGET_KIB} KiB${verdict}`);
  const ratio = { median: ratios.length ? median(ratios) : null, perRun: ratios };
  console.log(
    `  gridwire / raw (same run)    ${(ratio.median === null ? 'not measured' : `${ratio.median.toFixed(1)}x`).padStart(8)}      ` +
      `(per run: ${ratio.perRun.map((x) => x.toFixed(1)).join(', ')}; no target)`,
  );
  return {
    bench: 'connrss',
    checks: {
      gridwire_rss_per_connection_kib: { kib: gridwirePerConn, targetKiB: TARGET_KIB, met },
      gridwire_over_raw: { median: ratio.median, perRun: ratio.perRun },
    },
    runs: results.map((r) => ({
      ...r,
      rssPerConnKiB: perConnKiB(r, rss),
      rssMarginalKiB: marginalKiB(r, rss),
      heapPerConnKiB: perConnKiB(r, heapUsed),
      externalPerConnKiB: perConnKiB(r, external),
    })),
    config: { connections: n, wanted: WANTED_CONNECTIONS, clients: CLIENTS, runs, openFilesLimit: openFilesLimit() },
  };
}

function formatResults(results: ConnResult[]): string {
  const head = [
    'run', 'system', 'server RSS none -> all MiB', 'RSS KiB/conn', 'marginal KiB/conn', 'heap KiB/conn',
    'external KiB/conn', 'client RSS KiB/conn', 'open ms',
  ];
  const mib = (m: FleetMemory | null): string => fmt((m?.rss ?? NaN) / KiB / KiB, 1);
  const body = results.map((r) =>
    r.ok
      ? [
          String(r.run), r.system, `${mib(r.none)} -> ${mib(r.all)}`, fmt(perConnKiB(r, rss), 2), fmt(marginalKiB(r, rss), 2),
          fmt(perConnKiB(r, heapUsed), 2), fmt(perConnKiB(r, external), 2), fmt(r.clientRssGrowth / r.connections / KiB, 2),
          fmt(r.openMs),
        ]
      : [String(r.run), r.system, `FAILED: ${r.error ?? ''}`, '', '', '', '', '', ''],
  );
  return markdownTable(head, body, 2);
}
