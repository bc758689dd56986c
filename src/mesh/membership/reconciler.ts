/**
 * What a mesh does with its membership sources' answers: keeps each source's last good set, diffs their union against
 * the peers it added from them, and adds, removes (after the flap guard) and re-addresses those peers. It never touches
 * a peer it did not add (the static `peers`, `addPeer()` calls), skips the node's own name, bounds and validates every
 * answer (a bad entry is skipped with one warning, never thrown), and keeps the last good set while a source fails,
 * with one warning per streak of failures. It knows the mesh only through MembershipTarget.
 *
 * A peer it added, per answer (the union of every source's last good set, the first source winning a name):
 *
 * | state          | the answer lists it, same address | lists it, another address          | lacks it                                         |
 * |----------------|-----------------------------------|------------------------------------|--------------------------------------------------|
 * | present        | present                           | re-addressed (remove + add) present | missing since now; removed at once if removeAfterMs is 0 |
 * | missing(since) | present                           | re-addressed, present              | removed once now - since >= removeAfterMs, else stays |
 *
 * A source that fails delivers no answer: nothing moves, its last good set stays in the union.
 */
import type { LogFn } from '../../log.js';
import {
  DEFAULT_MAX_PEERS,
  DEFAULT_REMOVE_AFTER_MS,
  DEFAULT_REMOVE_GRACE_MS,
  MAX_MAX_PEERS,
  type MembershipChange,
  type MembershipSink,
  type MembershipSource,
} from './membership.js';

/** @internal What the reconciler needs of a mesh. */
export interface MembershipTarget {
  /** The node's own name: skipped in every answer. */
  readonly name: string;
  readonly scheme: 'tcp' | 'tls';
  readonly log: LogFn;
  /** Whether the mesh has a peer of that name (whoever added it). */
  has(name: string): boolean;
  /** Throws a TypeError for an address addPeer() would refuse. */
  checkAddress(url: string): void;
  addPeer(name: string, url: string): void;
  removePeer(name: string, graceMs: number): Promise<void>;
  changed(change: MembershipChange): void;
}

/**
 * Timers fire up to a millisecond early against performance.now(): an answer exactly removeAfterMs after the first
 * one without a peer (the defaults make it so) must count as that long.
 */
const CLOCK_SLACK_MS = 5;
/** The longest node name a HELLO carries, in UTF-8 bytes (as MeshOptions.name). */
const MAX_NAME_BYTES = 255;

interface SourceState {
  readonly source: MembershipSource;
  readonly removeAfterMs: number;
  readonly maxPeers: number;
  readonly graceMs: number;
  /** The last good answer, validated; undefined until the first. */
  last: Map<string, string> | undefined;
  /** Failed reads since the last answer (one warning per streak). */
  failures: number;
  /** Bad entries of the last answer, `name address`: each warned once while it stays. */
  badWarned: Set<string>;
  overflowWarned: boolean;
  emptyWarned: boolean;
}

interface OwnedPeer {
  url: string;
  /** Index of the source whose answer gave it. */
  source: number;
  /** When an answer first lacked it (undefined while present). */
  missingSince: number | undefined;
}

/** Sources already given to a mesh: one source feeding two meshes would be started twice. */
const claimed = new WeakSet<MembershipSource>();

/** @internal */
export class MembershipReconciler {
  private readonly sources: SourceState[];
  private readonly owned = new Map<string, OwnedPeer>();
  private stopped = false;

  constructor(
    sources: MembershipSource | readonly MembershipSource[],
    private readonly target: MembershipTarget,
    private readonly now: () => number = () => performance.now(),
  ) {
    const list: readonly MembershipSource[] = Array.isArray(sources) ? sources : [sources as MembershipSource];
    this.sources = list.map((source, i) => stateOf(source, i));
    for (const { source } of this.sources) claimed.add(source);
  }

  start(): void {
    this.sources.forEach((state, index) => {
      const sink: MembershipSink = {
        scheme: this.target.scheme,
        update: (peers) => this.onAnswer(index, peers),
        fail: (error) => this.onFailure(index, error),
        warn: (message) => {
          if (!this.stopped) this.target.log('warn', `${this.prefix(state.source)}: ${message}`);
        },
      };
      try {
        state.source.start(sink);
      } catch (error) {
        this.onFailure(index, error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  stop(): void {
    this.stopped = true;
    for (const { source } of this.sources) {
      try {
        source.stop();
      } catch (error) {
        this.target.log('warn', `${this.prefix(source)}: stop() threw: ${String(error)}`);
      }
    }
  }

  /** Names of the peers the sources added (tests, and what a stats reader may want). */
  get peerNames(): string[] {
    return [...this.owned.keys()];
  }

  private prefix(source: MembershipSource): string {
    return `mesh ${this.target.name}: membership from ${source.description}`;
  }

  private onFailure(index: number, error: Error): void {
    if (this.stopped) return;
    const state = this.sources[index]!;
    if (state.failures++ === 0) {
      const kept = state.last?.size ?? 0;
      this.target.log('warn', `${this.prefix(state.source)}: ${error.message}; keeping its last ${kept} peer(s) and retrying (said once until it answers again)`);
    }
  }

  private onAnswer(index: number, peers: Iterable<readonly [string, string]>): void {
    if (this.stopped) return;
    const state = this.sources[index]!;
    let answer: Map<string, string>;
    try {
      answer = this.validated(state, peers);
    } catch (error) {
      // an iterable that throws halfway is a failed read, not a smaller set
      this.onFailure(index, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (state.failures > 0) this.target.log('info', `${this.prefix(state.source)}: answers again after ${state.failures} failed read(s)`);
    state.failures = 0;
    state.last = answer;
    this.reconcile();
  }

  /** The answer without the node itself, at most maxPeers (the first by name), bad entries skipped and warned once. */
  private validated(state: SourceState, peers: Iterable<readonly [string, string]>): Map<string, string> {
    const entries: Array<readonly [string, string]> = [];
    let total = 0;
    for (const entry of peers) {
      total++;
      if (Array.isArray(entry) && entry[0] === this.target.name) continue; // ourselves: silently
      entries.push(entry);
    }
    this.warnEmpty(state, total);
    entries.sort(([a, aUrl], [b, bUrl]) => (a < b ? -1 : a > b ? 1 : aUrl < bUrl ? -1 : aUrl > bUrl ? 1 : 0));
    if (entries.length > state.maxPeers) {
      if (!state.overflowWarned) {
        this.target.log('warn', `${this.prefix(state.source)}: ${entries.length} peers in one answer, more than maxPeers (${state.maxPeers}); keeping the first ${state.maxPeers} by name`);
      }
      state.overflowWarned = true;
      entries.length = state.maxPeers;
    } else state.overflowWarned = false;
    const answer = new Map<string, string>();
    const bad = new Set<string>();
    for (const entry of entries) {
      const [name, url] = entry as readonly [unknown, unknown];
      const problem = this.entryProblem(name, url) ?? (answer.has(name as string) ? `a second address for the same name (kept ${answer.get(name as string)})` : undefined);
      if (problem === undefined) {
        answer.set(name as string, url as string);
        continue;
      }
      const key = `${String(name)} ${String(url)}`;
      bad.add(key);
      if (!state.badWarned.has(key)) this.target.log('warn', `${this.prefix(state.source)}: skipping ${JSON.stringify(String(name))} -> ${JSON.stringify(String(url))}: ${problem}`);
    }
    state.badWarned = bad;
    return answer;
  }

  private warnEmpty(state: SourceState, total: number): void {
    if (total > 0) {
      state.emptyWarned = false;
      return;
    }
    if (!state.emptyWarned) {
      this.target.log('warn', `${this.prefix(state.source)}: the answer names no node (a mistyped name, or every node gone?); the peers it gave are removed after removeAfterMs (${state.removeAfterMs} ms)`);
    }
    state.emptyWarned = true;
  }

  /** Why addPeer() would refuse this entry, or undefined. */
  private entryProblem(name: unknown, url: unknown): string | undefined {
    if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES) return `a node name is a string of 1..${MAX_NAME_BYTES} UTF-8 bytes`;
    if (typeof url !== 'string') return 'an address is a string';
    try {
      this.target.checkAddress(url);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
    return undefined;
  }

  private reconcile(): void {
    const wanted = new Map<string, { url: string; source: number }>();
    this.sources.forEach((state, source) => {
      for (const [name, url] of state.last ?? []) if (!wanted.has(name)) wanted.set(name, { url, source });
    });
    const now = this.now();
    for (const [name, peer] of this.owned) {
      if (wanted.has(name)) continue;
      const since = peer.missingSince ?? now;
      peer.missingSince = since;
      if (now - since >= this.sources[peer.source]!.removeAfterMs - CLOCK_SLACK_MS) this.remove(name, peer);
    }
    for (const [name, { url, source }] of wanted) {
      const peer = this.owned.get(name);
      if (peer === undefined) {
        if (!this.target.has(name)) this.add(name, url, source); // else a static or addPeer()'d peer: never ours
        continue;
      }
      peer.missingSince = undefined;
      peer.source = source;
      if (peer.url !== url) this.readdress(name, peer, url);
      else if (!this.target.has(name)) this.add(name, url, source); // removed by hand meanwhile: the source says it is there
    }
  }

  private add(name: string, url: string, source: number): void {
    try {
      this.target.addPeer(name, url);
    } catch (error) {
      this.target.log('warn', `${this.prefix(this.sources[source]!.source)}: could not add ${name}: ${String(error)}`);
      return;
    }
    this.owned.set(name, { url, source, missingSince: undefined });
    this.report({ change: 'add', peer: name, url }, source);
  }

  private remove(name: string, peer: OwnedPeer): void {
    this.owned.delete(name);
    this.detach(name, peer.source);
    this.report({ change: 'remove', peer: name, url: peer.url }, peer.source);
  }

  /**
   * The peer's name is who it is; its address is only where it is now. A node that moved (a pod rescheduled with a new
   * IP) no longer answers at its old address, so its old connections are closed (gracefully) and a new peer of the same
   * name dials the new one: one path (removePeer, addPeer) that every other change takes too.
   */
  private readdress(name: string, peer: OwnedPeer, url: string): void {
    const previousUrl = peer.url;
    this.detach(name, peer.source);
    try {
      this.target.addPeer(name, url);
    } catch (error) {
      this.owned.delete(name);
      this.target.log('warn', `${this.prefix(this.sources[peer.source]!.source)}: could not add ${name} at its new address: ${String(error)}`);
      return;
    }
    peer.url = url;
    this.report({ change: 'address', peer: name, url, previousUrl }, peer.source);
  }

  private detach(name: string, source: number): void {
    if (!this.target.has(name)) return;
    this.target.removePeer(name, this.sources[source]!.graceMs).catch((error: unknown) => {
      this.target.log('warn', `${this.prefix(this.sources[source]!.source)}: removing ${name}: ${String(error)}`);
    });
  }

  private report(change: Omit<MembershipChange, 'source'>, source: number): void {
    const full: MembershipChange = { ...change, source: this.sources[source]!.source.description };
    const detail = full.change === 'address' ? `${full.previousUrl} -> ${full.url}` : full.url;
    this.target.log('info', `${this.prefix(this.sources[source]!.source)}: ${full.change} ${full.peer} (${detail})`);
    this.target.changed(full);
  }
}

/** A source as given (checked here, at `new Mesh`, not when it first answers), with its policy resolved. */
function stateOf(source: MembershipSource, index: number): SourceState {
  const what = `membership[${index}]`;
  if (typeof source !== 'object' || source === null || typeof source.start !== 'function' || typeof source.stop !== 'function' || typeof source.description !== 'string') {
    throw new TypeError(`${what} must be a membership source (dnsMembership(), fileMembership(), or an object with description, start(sink) and stop())`);
  }
  if (claimed.has(source)) throw new TypeError(`${what} (${source.description}) is already given to a mesh: make one source per mesh`);
  const removeAfterMs = source.removeAfterMs ?? DEFAULT_REMOVE_AFTER_MS;
  const maxPeers = source.maxPeers ?? DEFAULT_MAX_PEERS;
  const graceMs = source.graceMs ?? DEFAULT_REMOVE_GRACE_MS;
  if (typeof removeAfterMs !== 'number' || !(removeAfterMs >= 0)) throw new RangeError(`${what}.removeAfterMs must be a number of ms, 0 or more, got ${String(removeAfterMs)}`);
  if (!Number.isInteger(maxPeers) || maxPeers < 1 || maxPeers > MAX_MAX_PEERS) throw new RangeError(`${what}.maxPeers must be an integer in 1..${MAX_MAX_PEERS}, got ${String(maxPeers)}`);
  if (typeof graceMs !== 'number' || !(graceMs >= 0)) throw new RangeError(`${what}.graceMs must be a number of ms, 0 or more, got ${String(graceMs)}`);
  return { source, removeAfterMs, maxPeers, graceMs, last: undefined, failures: 0, badWarned: new Set(), overflowWarned: false, emptyWarned: false };
}
