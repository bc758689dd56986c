/**
 * gridwire's Prometheus collector, `gridwire/prometheus`: registers `gridwire_*` metrics in a prom-client Registry whose
 * values are read from a source's `stats()` at scrape time (prom-client's `collect()`): nothing is counted twice and
 * nothing runs between scrapes. The only module that imports prom-client (an optional peer dependency): `import
 * 'gridwire'` never loads it.
 *
 * Labels are bounded by this side's own configuration, never by what a peer sends: `method` is a method this side
 * defined (its clients' and its services'; a method the peer names that this side does not serve is `unknown`),
 * `status` a status name, `direction` `made` or `served`, `peer` (a Mesh only) a peer name from the mesh's own list.
 * No token, address or certificate is ever a label.
 *
 * @module gridwire/prometheus
 */
import { Counter, Gauge, type Registry } from 'prom-client';

import type { CallCounts, CallStats } from '../rpc/call-stats.js';
import type { SessionStats } from '../rpc/session-stats.js';
import type { ServerStats } from '../endpoint/server-stats.js';
import type { MeshStats } from '../mesh/mesh-stats.js';

/** What a collector reads: a listen() Server, a Mesh, an RpcSession or a Channel (anything with their stats()). */
export interface MetricsSource {
  stats(): SessionStats | ServerStats | MeshStats;
}

/**
 * A prom-client `Registry` (its default `register`, or `new Registry()`), described by the part a collector uses, so
 * these declarations compile without prom-client's own (a program that passes one has them).
 */
export interface PrometheusRegistry {
  registerMetric(metric: never): void;
  getSingleMetric(name: string): unknown;
}

export interface GridwireMetricsOptions {
  /** Prefix of every metric name, to collect two sources into one registry. Default `gridwire_`. */
  prefix?: string;
}

/** One set of stats and the labels that tell it apart (a mesh: one per peer). */
interface LabelledStats {
  labels: Record<string, string>;
  stats: SessionStats;
}

/**
 * Registers gridwire's metrics for `source` in `registry` (a prom-client Registry, e.g. its default `register`):
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `gridwire_calls_started_total` | counter | direction, method |
 * | `gridwire_calls_finished_total` | counter | direction, method, status |
 * | `gridwire_calls_in_flight` | gauge | direction, method |
 * | `gridwire_received_bytes_total`, `gridwire_sent_bytes_total` | counter | |
 * | `gridwire_connections` | gauge (open now) | |
 * | `gridwire_streams_open` | gauge | |
 * | `gridwire_credit_stalls_total` | counter | |
 * | `gridwire_credit_stall_seconds_total` | counter | |
 * | `gridwire_credit_stalled_streams` | gauge (blocked now) | |
 * | `gridwire_rtt_seconds` | gauge (last answered ping) | |
 *
 * For a Mesh every metric also has `peer` (the peer's lanes summed). Counters keep what closed connections counted,
 * so they only grow. Registering twice in one registry throws (prom-client's duplicate name): give a `prefix`.
 */
export function collectGridwireMetrics(registry: PrometheusRegistry, source: MetricsSource, options: GridwireMetricsOptions = {}): void {
  if (typeof source?.stats !== 'function') throw new TypeError('collectGridwireMetrics: source must be a Server, a Mesh, an RpcSession or a Channel');
  const prefix = options.prefix ?? 'gridwire_';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new TypeError(`collectGridwireMetrics: prefix ${JSON.stringify(prefix)} is not a metric name prefix`);
  const read = scrapeOnce(source);
  // a mesh's metrics carry `peer`: decided once, from what the source is, so every scrape has the same label names
  const peer = read().mesh ? ['peer'] : [];
  const registers = [registry as unknown as Registry];
  /** Each metric's values, set afresh at every scrape from that scrape's reading. */
  type Fill = (put: (labels: Record<string, string>, value: number) => void) => void;
  const counter = (name: string, help: string, labelNames: string[], fill: Fill): void => {
    new Counter({ name: prefix + name, help, labelNames, registers, collect(this: Counter) {
      this.reset();
      fill((labels, value) => this.inc(labels, value));
    } });
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: Fill): void => {
    new Gauge({ name: prefix + name, help, labelNames, registers, collect(this: Gauge) {
      this.reset();
      fill((labels, value) => this.set(labels, value));
    } });
  };
  /** Per connection set (a mesh: per peer), one value of its stats; undefined leaves it out. */
  const perSet = (value: (stats: SessionStats) => number | undefined): Fill => (put) => {
    for (const { labels, stats } of read().sets) {
      const v = value(stats);
      if (v !== undefined) put(labels, v);
    }
  };
  /** Per set, direction and method, from that method's counts. */
  const perMethod = (each: (put: (labels: Record<string, string>, value: number) => void, labels: Record<string, string>, counts: CallCounts) => void): Fill => (put) => {
    for (const { labels, stats } of read().sets) forEachMethod(stats.calls, (direction, method, counts) => each(put, { ...labels, direction, method }, counts));
  };

  const call = [...peer, 'direction', 'method'];
  counter('calls_started_total', 'Calls started, by direction (made by this side, served by it) and method.', call, perMethod((put, labels, c) => put(labels, c.started)));
  counter('calls_finished_total', 'Calls finished, by direction, method and status.', [...call, 'status'], perMethod((put, labels, c) => {
    for (const [status, n] of Object.entries(c.byStatus)) put({ ...labels, status }, n);
  }));
  gauge('calls_in_flight', 'Calls started and not finished, by direction and method.', call, perMethod((put, labels, c) => put(labels, c.inFlight)));
  counter('received_bytes_total', 'Bytes read from the connections (frames and headers included).', peer, perSet((s) => s.bytesIn));
  counter('sent_bytes_total', 'Bytes written to the connections.', peer, perSet((s) => s.bytesOut));
  gauge('connections', 'Connections open now.', peer, perSet((s) => s.connections));
  gauge('streams_open', 'Streams open now (calls in progress, both directions).', peer, perSet((s) => s.streamsOpen));
  counter('credit_stalls_total', 'Times a stream of this side had bytes to send and no flow-control credit from the peer.', peer, perSet((s) => s.creditStalls.count));
  counter('credit_stall_seconds_total', "Time this side's streams spent blocked on the peer's flow-control credit, summed over streams.", peer, perSet((s) => s.creditStalls.blockedMs / 1000));
  gauge('credit_stalled_streams', "Streams of this side blocked on the peer's flow-control credit now.", peer, perSet((s) => s.creditStalls.blockedNow));
  gauge('rtt_seconds', 'Round-trip time of the last answered ping (the largest over the connections counted).', peer, perSet((s) => (s.rttMs === undefined ? undefined : s.rttMs / 1000)));
}

function forEachMethod(calls: CallStats, each: (direction: string, method: string, counts: CallCounts) => void): void {
  for (const [method, both] of Object.entries(calls.methods)) {
    if (both.made.started > 0) each('made', method, both.made);
    if (both.served.started > 0) each('served', method, both.served);
  }
}

/**
 * The source's stats, read once per scrape: every metric's collect() of one scrape runs before the next macrotask,
 * so they share one reading (consistent with each other) instead of each walking the connections again.
 */
function scrapeOnce(source: MetricsSource): () => { mesh: boolean; sets: LabelledStats[] } {
  let cached: { mesh: boolean; sets: LabelledStats[] } | undefined;
  return () => {
    if (cached !== undefined) return cached;
    const stats = source.stats();
    if ('peers' in stats) {
      cached = { mesh: true, sets: Object.entries(stats.peers).map(([peer, peerStats]) => ({ labels: { peer }, stats: peerStats })) };
    } else {
      cached = { mesh: false, sets: [{ labels: {}, stats: 'totals' in stats ? stats.totals : stats }] };
    }
    setImmediate(() => (cached = undefined));
    return cached;
  };
}
