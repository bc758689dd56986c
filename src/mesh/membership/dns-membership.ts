/**
 * Peers from DNS: the A or AAAA records of a name (every address one node, all on one `port`), or its SRV records
 * (each target a node, its port from the record, its address from the target's A / AAAA records): how a Kubernetes
 * headless service publishes its pods. Re-read every `intervalMs` with node:dns's `Resolver` (its own servers when
 * `servers` is given). Knows nothing of meshes: it hands complete sets to its sink (membership.ts).
 *
 * Names are what every node derives alike from the same records, without talking: an SRV target's host name
 * (lower-case, no trailing dot), or `host:port` of an A / AAAA address (`[v6]:port`); `nameOf` picks another.
 * A name with no records (NXDOMAIN, NODATA) is an answer with no nodes; a SERVFAIL, timeout or refused query is a
 * failed read (the last good set stays). TTLs are not read: the interval is the only clock.
 */
import { Resolver } from 'node:dns/promises';
import { RefreshLoop } from './refresh-loop.js';
import { addressOf, resolveSourceOptions, type MembershipSink, type MembershipSource, type MembershipSourceOptions } from './membership.js';

/** One node as DNS describes it: what `nameOf` is given. */
export interface DnsPeerRecord {
  /** The SRV record's target host name (no trailing dot); for A / AAAA, the name that was resolved. */
  host: string;
  /** The node's IP address (IPv6 without brackets). */
  address: string;
  family: 4 | 6;
  port: number;
}

export interface DnsMembershipOptions extends MembershipSourceOptions {
  /** The DNS name: `nodes.example` for A / AAAA, `_gridwire._tcp.nodes.example` with `srv`. */
  name: string;
  /** The port every node listens on: required for A / AAAA, ignored with `srv` (each record has its own). */
  port?: number;
  /** Read SRV records (then each target's addresses) instead of the name's A / AAAA records. Default false. */
  srv?: boolean;
  /** DNS servers to ask (`'10.0.0.2'`, `'[fd00::2]:5353'`), instead of the system's. */
  servers?: string[];
  /**
   * Which addresses: 4 (A), 6 (AAAA), or `auto` (default): A records, or AAAA records when there are none, so a
   * dual-stack node is one node, not two.
   */
  family?: 4 | 6 | 'auto';
  /** A node's name from its record. Default: the SRV target, or `address:port` (`[address]:port` for IPv6). */
  nameOf?: (record: DnsPeerRecord) => string;
  /** Per DNS query attempt (two attempts). Default 2 000, 100 - 60 000. */
  queryTimeoutMs?: number;
  /** @internal A resolver to use instead of node:dns's (tests). */
  resolver?: DnsResolver;
}

/** @internal What the source asks of a resolver. */
export type DnsResolver = Pick<Resolver, 'resolve4' | 'resolve6' | 'resolveSrv' | 'cancel'>;

/** Default interval: a node joining is seen within 30 s, and a fleet of 1 000 nodes asks ~33 times a second. */
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_QUERY_TIMEOUT_MS = 2_000;
/** SRV targets resolved at once: a large answer neither floods the server nor takes one query time per target. */
const TARGET_LOOKUPS_AT_ONCE = 8;
/** Answers that say "no such records": an empty set, not a failure. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

/** Peers from a DNS name's A / AAAA or SRV records, re-read every `intervalMs` (default 30 000). */
export function dnsMembership(options: DnsMembershipOptions): DnsMembership {
  return new DnsMembership(options);
}

/** The source dnsMembership() makes; `refresh()` reads now (on a SIGHUP, say) instead of waiting for the interval. */
export class DnsMembership implements MembershipSource {
  readonly description: string;
  readonly removeAfterMs: number;
  readonly maxPeers: number;
  readonly graceMs: number;
  private readonly loop: RefreshLoop;
  private readonly resolver: DnsResolver;
  private sink: MembershipSink | undefined;
  private overflowWarned = false;
  private nameOfWarned = false;

  /** @internal Use dnsMembership(). */
  constructor(private readonly options: DnsMembershipOptions) {
    const what = 'dnsMembership';
    if (typeof options?.name !== 'string' || options.name === '') throw new TypeError(`${what}: name must be a non-empty DNS name`);
    const srv = options.srv === true;
    if (!srv && !(Number.isInteger(options.port) && options.port! >= 1 && options.port! <= 65_535)) {
      throw new RangeError(`${what}: port must be an integer in 1..65535 for A / AAAA records (or set srv: true), got ${String(options.port)}`);
    }
    if (options.family !== undefined && options.family !== 4 && options.family !== 6 && options.family !== 'auto') {
      throw new TypeError(`${what}: family must be 4, 6 or 'auto', got ${String(options.family)}`);
    }
    if (options.nameOf !== undefined && typeof options.nameOf !== 'function') throw new TypeError(`${what}: nameOf must be a function`);
    const timeout = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    if (!Number.isInteger(timeout) || timeout < 100 || timeout > 60_000) throw new RangeError(`${what}: queryTimeoutMs must be an integer in 100..60000, got ${String(timeout)}`);
    const resolved = resolveSourceOptions(what, options, DEFAULT_INTERVAL_MS);
    ({ removeAfterMs: this.removeAfterMs, maxPeers: this.maxPeers, graceMs: this.graceMs } = resolved);
    this.resolver = options.resolver ?? systemResolver(timeout, options.servers);
    this.description = `dns ${srv ? 'SRV' : options.family === 4 ? 'A' : options.family === 6 ? 'AAAA' : 'A/AAAA'} ${options.name}`;
    this.loop = new RefreshLoop(resolved.intervalMs, () => this.read());
  }

  start(sink: MembershipSink): void {
    this.sink = sink;
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
    this.resolver.cancel(); // queries in flight end now (ECANCELLED), so no handle of ours outlives the mesh
  }

  /**
   * Reads now, or as soon as it may (after the read under way, and at least a second after the last read ended);
   * resolves once that read has ended. The next timed read comes one interval after it.
   */
  refresh(): Promise<void> {
    return this.loop.now();
  }

  private async read(): Promise<void> {
    const sink = this.sink!;
    try {
      const records = this.options.srv === true ? await this.srvRecords() : await this.hostRecords();
      sink.update(this.named(records, sink.scheme));
    } catch (error) {
      sink.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private async hostRecords(): Promise<DnsPeerRecord[]> {
    const { family, addresses } = await this.addressesOf(this.options.name);
    return addresses.map((address) => ({ host: this.options.name, address, family, port: this.options.port! }));
  }

  private async srvRecords(): Promise<DnsPeerRecord[]> {
    const answer = await this.orNone(this.resolver.resolveSrv(this.options.name));
    const unique = new Map<string, { host: string; port: number }>();
    for (const record of answer) {
      const host = record.name.replace(/\.$/, '').toLowerCase();
      // "." with port 0 says "no such service here"
      if (host === '' || !(record.port >= 1 && record.port <= 65_535)) continue;
      unique.set(`${host} ${record.port}`, { host, port: record.port });
    }
    const targets = [...unique.values()].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port));
    // each target costs a query: resolve at most maxPeers of them (the reconciler would keep no more anyway)
    if (targets.length > this.maxPeers) {
      if (!this.overflowWarned) this.sink!.warn(`${targets.length} SRV targets, more than maxPeers (${this.maxPeers}); resolving the first ${this.maxPeers} by name`);
      this.overflowWarned = true;
      targets.length = this.maxPeers;
    } else this.overflowWarned = false;
    const records: Array<DnsPeerRecord | undefined> = new Array(targets.length);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < targets.length && !failed) {
        const i = next++;
        const { host, port } = targets[i]!;
        // a failure ends the read (the last good set stays): the other workers take no new target
        const { family, addresses } = await this.addressesOf(host).catch((error: unknown) => {
          failed = true;
          throw error;
        });
        // a target with no address (a pod just gone) is not a node now; several addresses: the lowest, so every
        // read (and every node) picks the same one whatever order the server answered in
        if (addresses.length > 0) records[i] = { host, address: addresses[0]!, family, port };
      }
    };
    await Promise.all(Array.from({ length: Math.min(TARGET_LOOKUPS_AT_ONCE, targets.length) }, worker));
    return records.filter((record) => record !== undefined);
  }

  /** The host's addresses of the configured family, sorted; none when it has no such records. */
  private async addressesOf(host: string): Promise<{ family: 4 | 6; addresses: string[] }> {
    const family = this.options.family ?? 'auto';
    if (family !== 6) {
      const v4 = await this.orNone(this.resolver.resolve4(host));
      if (family === 4 || v4.length > 0) return { family: 4, addresses: [...new Set(v4)].sort() };
    }
    const v6 = await this.orNone(this.resolver.resolve6(host));
    return { family: 6, addresses: [...new Set(v6)].sort() };
  }

  private async orNone<T>(query: Promise<T[]>): Promise<T[]> {
    try {
      return await query;
    } catch (error) {
      if (NO_RECORDS.has((error as { code?: string }).code ?? '')) return [];
      throw new Error(`${(error as Error).message ?? String(error)}`, { cause: error });
    }
  }

  private named(records: DnsPeerRecord[], scheme: 'tcp' | 'tls'): Array<[string, string]> {
    const peers: Array<[string, string]> = [];
    for (const record of records) {
      const url = addressOf(scheme, record.address, record.port);
      if (this.options.nameOf === undefined) {
        peers.push([this.options.srv === true ? record.host : url.slice(scheme.length + 3), url]);
        continue;
      }
      try {
        peers.push([this.options.nameOf(record), url]);
      } catch (error) {
        if (!this.nameOfWarned) this.sink!.warn(`nameOf threw for ${record.host} (${record.address}): ${String(error)}; that node is skipped`);
        this.nameOfWarned = true;
      }
    }
    return peers;
  }
}

function systemResolver(timeout: number, servers: string[] | undefined): Resolver {
  const resolver = new Resolver({ timeout, tries: 2 });
  if (servers !== undefined) {
    try {
      resolver.setServers(servers);
    } catch (error) {
      throw new TypeError(`dnsMembership: servers: ${(error as Error).message}`, { cause: error });
    }
  }
  return resolver;
}
