/**
 * What a mesh does with its membership sources' answers: keeps each source's last good set, diffs their union against
 * the peers it added from them, and adds, removes (after the flap guard) and re-addresses those peers. It acts on a
 * peer only while the mesh's peer of that name is the very one it added: never on the static `peers` or `addPeer()`
 * calls, nor on a peer of its own that the application removed or replaced (the name is then the application's until
 * the source drops it). It skips the node's own name silently, and an entry at the node's own listen address under
 * another name with a warning that names the fix (a node named unlike the source names it would dial itself for
 * ever). It bounds and validates every answer (a bad entry is skipped with one warning, never thrown), and keeps the last good set while a source fails, with one warning per streak of
 * failures. It knows the mesh only through MembershipTarget.
 *
 * A name it claimed, per answer (the union of every source's last good set, the first source winning a name). First,
 * a claim whose peer is no longer the mesh's peer of that name (removed, or replaced, by hand) becomes `released`
 * (one info line). Then:
 *
 * | state                    | the answer lists it, same address | lists it, another address           | lacks it                                                |
 * |--------------------------|-----------------------------------|-------------------------------------|---------------------------------------------------------|
 * | present                  | present                           | re-addressed (remove + add) present | missing since now; removed at once if removeAfterMs is 0 |
 * | missing(since)           | present                           | re-addressed, present               | removed once now - since >= removeAfterMs, else stays    |
 * | released                 | released (not added back)         | released                            | released, missing since now; dropped as below            |
 * | released, missing(since) | released                          | released                            | claim dropped (untouched) once now - since >= removeAfterMs |
 *
 * A name with no claim is added when the answer lists it and the mesh has no peer of that name. A source that fails
 * delivers no answer: nothing moves, its last good set stays in the union.
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
import { ownAddressTest } from './own-address.js';

/** @internal What the reconciler needs of a mesh. */
export interface MembershipTarget {
  /** The node's own name: skipped in every answer. */
  readonly name: string;
  readonly scheme: 'tcp' | 'tls';
  readonly log: LogFn;
  /** The mesh's peer of that name (whoever added it): compared with the one addPeer() returned to tell ours. */
  peer(name: string): object | undefined;
  /** Throws a TypeError for an address addPeer() would refuse. */
  checkAddress(url: string): void;
  /** The node's listen address as bound (its real port), if it listens: an entry at it is the node itself. */
  listenUrl(): string | undefined;
  /** Adds the peer and returns it (a new object at every call). */
  addPeer(name: string, url: string): object;
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

/** A name the reconciler added a peer for. */
interface Claim {
  url: string;
  /** Index of the source whose answer gave it. */
  source: number;
  /** When an answer first lacked it (undefined while present). */
  missingSince: number | undefined;
  /**
   * The peer it added; undefined once released: the application removed or replaced it, and the name is the
   * application's until the source drops it.
   */
  peer: object | undefined;
}

/** Sources already given to a mesh: one source feeding two meshes would be started twice. */
const claimed = new WeakSet<MembershipSource>();

/** @internal */
export class MembershipReconciler {
  private readonly sources: SourceState[];
  private readonly claims = new Map<string, Claim>();
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
    return [...this.claims].filter(([, claim]) => claim.peer !== undefined).map(([name]) => name);
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
    const listenUrl = this.target.listenUrl();
    const isOwnAddress = ownAddressTest(listenUrl);
    for (const entry of entries) {
      const [name, url] = entry as readonly [unknown, unknown];
      const problem =
        this.entryProblem(name, url) ??
        (answer.has(name as string) ? `a second address for the same name (kept ${answer.get(name as string)})` : undefined) ??
        (isOwnAddress(url as string)
          ? `that is this node's own address (it listens on ${listenUrl}): the source calls this node ${JSON.stringify(name)}, not ${JSON.stringify(this.target.name)}; name it ${JSON.stringify(name)} (MeshOptions.name), as the other nodes know it (they refuse its connections under another name)`
          : undefined);
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
    for (const [name, claim] of this.claims) {
      if (claim.peer !== undefined && this.target.peer(name) !== claim.peer) this.release(name, claim);
      if (wanted.has(name)) continue;
      const since = claim.missingSince ?? now;
      claim.missingSince = since;
      if (now - since < this.sources[claim.source]!.removeAfterMs - CLOCK_SLACK_MS) continue;
      if (claim.peer === undefined) this.claims.delete(name); // the source dropped it: the name is free again
      else this.remove(name, claim);
    }
    for (const [name, { url, source }] of wanted) {
      const claim = this.claims.get(name);
      if (claim === undefined) {
        if (this.target.peer(name) === undefined) this.add(name, url, source); // else a static or addPeer()'d peer: never ours
        continue;
      }
      claim.missingSince = undefined;
      claim.source = source;
      if (claim.peer !== undefined && claim.url !== url) this.readdress(name, claim, url);
    }
  }

  /**
   * The application removed our peer (removePeer) or put its own in its place (removePeer, addPeer): from now on the
   * name is the application's. Not added back while the source names it (an operator who removed a node meant it,
   * and `await removePeer(); addPeer()` must not find the source's peer back in between); free again once the source
   * has dropped it for removeAfterMs.
   */
  private release(name: string, claim: Claim): void {
    claim.peer = undefined;
    const how = this.target.peer(name) === undefined ? 'removed' : 'replaced';
    this.target.log('info', `${this.prefix(this.sources[claim.source]!.source)}: ${name} was ${how} by hand; this source leaves it alone until its answers drop it`);
  }

  private add(name: string, url: string, source: number): void {
    let peer: object;
    try {
      peer = this.target.addPeer(name, url);
    } catch (error) {
      this.target.log('warn', `${this.prefix(this.sources[source]!.source)}: could not add ${name}: ${String(error)}`);
      return;
    }
    this.claims.set(name, { url, source, missingSince: undefined, peer });
    this.report({ change: 'add', peer: name, url }, source);
  }

  private remove(name: string, claim: Claim): void {
    this.claims.delete(name);
    this.detach(name, claim.source);
    this.report({ change: 'remove', peer: name, url: claim.url }, claim.source);
  }

  /**
   * The peer's name is who it is; its address is only where it is now. A node that moved (a pod rescheduled with a new
   * IP) no longer answers at its old address, so its old connections are closed (gracefully) and a new peer of the same
   * name dials the new one: one path (removePeer, addPeer) that every other change takes too.
   */
  private readdress(name: string, claim: Claim, url: string): void {
    const previousUrl = claim.url;
    this.detach(name, claim.source);
    try {
      claim.peer = this.target.addPeer(name, url);
    } catch (error) {
      this.claims.delete(name);
      this.target.log('warn', `${this.prefix(this.sources[claim.source]!.source)}: could not add ${name} at its new address: ${String(error)}`);
      return;
    }
    claim.url = url;
    this.report({ change: 'address', peer: name, url, previousUrl }, claim.source);
  }

  private detach(name: string, source: number): void {
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
