/**
 * The membership seam: a source of a mesh's peers from the user's source of truth (a DNS name, a watched file, or
 * the user's own code). A source only reads; it delivers the complete current set of peers (name -> address) each
 * time it learns it, or says that an attempt failed. What the mesh does with the sets (diffing against what it holds,
 * the flap guard, bounds, warnings) is reconciler.ts's job; a source knows nothing of peers, links or connections.
 */
import { MAX_TIMER_MS } from '../../timers.js';

/** What a source hands its answers to (made by the mesh; one per source). */
export interface MembershipSink {
  /**
   * The complete current set of peers, name -> address (`tcp://host:port`, or `tls://` when `scheme` is `tls`). Call it
   * after every successful read, unchanged sets included: a peer the answers lack is removed only at an answer.
   */
  update(peers: Iterable<readonly [name: string, address: string]>): void;
  /** One read failed (a DNS SERVFAIL or timeout, an unreadable or malformed file): the last good set stays. */
  fail(error: Error): void;
  /** Something about an answer worth one line in the mesh's log (the source says it once, not at every read). */
  warn(message: string): void;
  /** The scheme of the mesh's addresses: `tls` when the mesh has `tls` options, else `tcp`. */
  readonly scheme: 'tcp' | 'tls';
}

/**
 * Where a mesh's peers come from (MeshOptions.membership): `dnsMembership()`, `fileMembership()`, or an object of the
 * application's own. Give each source to one mesh only.
 */
export interface MembershipSource {
  /** What the source reads, for log lines and events: `dns SRV _gw._tcp.nodes.example`, `file /etc/gw/peers.json`. */
  readonly description: string;
  /**
   * Flap guard: a peer missing from this source's answers is removed at the first answer that still lacks it once
   * this long has passed since the first answer that lacked it. Default 60 000 (0: at the first answer without it).
   */
  readonly removeAfterMs?: number;
  /** At most this many peers are taken from one answer (the first ones by name; a warning says so). Default 1 000. */
  readonly maxPeers?: number;
  /** Calls in flight on a removed peer's connections get this long to finish. Default 10 000. */
  readonly graceMs?: number;
  /** Begins reading; answers go to `sink` until stop(). Called once, when the mesh starts. */
  start(sink: MembershipSink): void;
  /** Stops reading: no timer, watcher or query of the source remains. */
  stop(): void;
}

/** What the mesh emits (`mesh.on('membership', ...)`) and logs at `info` for each change a source made. */
export interface MembershipChange {
  /** `add`: a new peer; `remove`: gone from the source for removeAfterMs; `address`: its address changed. */
  change: 'add' | 'remove' | 'address';
  peer: string;
  /** The peer's address from now on (`remove`: the one it had). */
  url: string;
  /** `address`: the one it had before. */
  previousUrl?: string;
  /** The source's description. */
  source: string;
}

/** Options every source of gridwire takes. */
export interface MembershipSourceOptions {
  /** How often the source is read again. At least 1 000 ms. */
  intervalMs?: number;
  /** See MembershipSource.removeAfterMs. Default: two intervals (a peer the answers lack for less than that stays). */
  removeAfterMs?: number;
  /** See MembershipSource.maxPeers. Default 1 000, at most 100 000. */
  maxPeers?: number;
  /** See MembershipSource.graceMs. Default 10 000. */
  graceMs?: number;
}

/** @internal The shortest interval a source may be read at: a fleet of nodes each reading it must not flood it. */
export const MIN_INTERVAL_MS = 1_000;
/** @internal Peers taken from one answer by default; far more than a mesh of full-mesh connections holds well. */
export const DEFAULT_MAX_PEERS = 1_000;
/** @internal The most a source may be allowed to deliver. */
export const MAX_MAX_PEERS = 100_000;
/** @internal Removal delay of a source that says nothing of its own (an application's source). */
export const DEFAULT_REMOVE_AFTER_MS = 60_000;
/** @internal The grace of a removed peer's calls, as a mesh's stop() gives by default. */
export const DEFAULT_REMOVE_GRACE_MS = 10_000;

/** @internal A source's common options, checked and resolved; `what` names the source in the errors. */
export function resolveSourceOptions(
  what: string,
  options: MembershipSourceOptions,
  defaultIntervalMs: number,
): { intervalMs: number; removeAfterMs: number; maxPeers: number; graceMs: number } {
  const intervalMs = options.intervalMs ?? defaultIntervalMs;
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_TIMER_MS) {
    throw new RangeError(`${what}: intervalMs must be a number of ms in ${MIN_INTERVAL_MS}..${MAX_TIMER_MS}, got ${String(intervalMs)}`);
  }
  const removeAfterMs = options.removeAfterMs ?? 2 * intervalMs;
  if (typeof removeAfterMs !== 'number' || !(removeAfterMs >= 0)) {
    throw new RangeError(`${what}: removeAfterMs must be a number of ms, 0 or more (Infinity: never remove), got ${String(removeAfterMs)}`);
  }
  const maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
  if (!Number.isInteger(maxPeers) || maxPeers < 1 || maxPeers > MAX_MAX_PEERS) {
    throw new RangeError(`${what}: maxPeers must be an integer in 1..${MAX_MAX_PEERS}, got ${String(maxPeers)}`);
  }
  const graceMs = options.graceMs ?? DEFAULT_REMOVE_GRACE_MS;
  if (typeof graceMs !== 'number' || !(graceMs >= 0)) {
    throw new RangeError(`${what}: graceMs must be a number of ms, 0 or more (Infinity: wait for the calls), got ${String(graceMs)}`);
  }
  return { intervalMs, removeAfterMs, maxPeers, graceMs };
}

/** @internal `scheme://host:port`, an IPv6 address in brackets. */
export function addressOf(scheme: 'tcp' | 'tls', host: string, port: number): string {
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
