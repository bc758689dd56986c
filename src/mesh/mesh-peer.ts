/**
 * One peer of a mesh: its lanes (one Link per connection label), the peer's state derived from them, and typed clients
 * whose calls pick a lane and a connection. The Mesh creates peers and hands them inbound sessions.
 */
import { EventEmitter } from 'node:events';
import type { LogFn } from '../log.js';
import { TypedClients, type Client } from '../rpc/client/typed-client.js';
import { deadlineOf } from '../rpc/deadline.js';
import { MAX_TIMER_MS } from '../timers.js';
import type { RpcSession, RpcSessionOptions } from '../rpc/rpc-session.js';
import type { Refusal, SessionPeer } from '../session/handshake.js';
import { DEFAULT_READ_BUDGET_BYTES } from '../session/options.js';
import type { MethodKind, MethodMap, ServiceDef } from '../rpc/service.js';
import type { ResolvedReconnectOptions } from '../channel/backoff.js';
import { Link, type LinkState, type LinkStateEvent } from '../channel/link.js';
import { RoutedCaller } from '../channel/routed-caller.js';
import type { TlsConnectOptions } from '../transport/tls.js';
import { dialedNodeMismatch } from './certificate-name.js';
import { addSessionStats, emptySessionStats } from '../rpc/session-stats.js';
import type { PeerStats } from './mesh-stats.js';

export type PeerState = LinkState;

export interface PeerStateEvent {
  peer: string;
  /** The peer's state: `ready` while at least one control connection is. */
  state: PeerState;
  /** The lane whose change caused this event (`control`, `control.1`, `data`). */
  lane: string;
  error?: Error;
  /** In backoff: time until the next dial of that lane. */
  delayMs?: number;
}

/** @internal Control connections per pair, at most. */
export const MAX_POOL = 64;
/** @internal The connection labels a mesh accepts. */
export const LANE_LABEL = /^(control(\.\d{1,2})?|data)$/;
/**
 * Per-turn read budget of a `data` lane (SessionOptions.readBudgetBytes): a bulk transfer yields the event loop every
 * 64 KiB read, so the control connections of this process stay responsive. Control lanes read with the session's
 * default budget, which only a flood or a burst ever reaches.
 */
const DATA_LANE_READ_BUDGET_BYTES = 64 * 1024;

/** @internal The read budget of a connection of `lane`, on either side of it. */
export function laneReadBudget(lane: string): number {
  return lane === 'data' ? DATA_LANE_READ_BUDGET_BYTES : DEFAULT_READ_BUDGET_BYTES;
}

/** @internal What a peer takes from its mesh. */
export interface PeerContext {
  /** The application's own admission check (MeshOptions.admit), after the mesh's. */
  admit?: (peer: SessionPeer) => string | Refusal | undefined;
  reconnect: ResolvedReconnectOptions;
  log: LogFn;
  fallbackDialAfterMs: number;
  /** The node's session options (with its name), for every dial. */
  sessionOptions: RpcSessionOptions;
  /** The node's TLS options (its key, certificate and CAs), when the mesh runs over mutual TLS. */
  tls?: TlsConnectOptions;
  onState(event: PeerStateEvent): void;
}

/**
 * One peer of a mesh: its lanes, its state, and typed clients whose calls pick a lane and a connection. Only a Mesh
 * makes one (`mesh.peer(name)`, `mesh.addPeer()`): the constructor is private and the factory internal, so the
 * published class has no constructor a user can call and its context stays out of the declarations.
 */
export class MeshPeer extends EventEmitter<{ state: [PeerStateEvent] }> {
  private readonly lanes = new Map<string, Link>();
  private readonly clients: TypedClients;
  private peerState: PeerState = 'connecting';
  private nextPick = 0;
  private started = false;
  private closed = false;

  /** @internal The peer `name` of a mesh, dialed at `url` (null: it dials us). */
  static create(name: string, url: string | null, dials: boolean, poolSize: number, dataLane: boolean, context: PeerContext): MeshPeer {
    return new MeshPeer(name, url, dials, poolSize, dataLane, context);
  }

  private constructor(
    readonly name: string,
    readonly url: string | null,
    /** True when this node is the one that dials this peer. */
    readonly dials: boolean,
    poolSize: number,
    dataLane: boolean,
    private readonly context: PeerContext,
  ) {
    super();
    const labels = poolSize === 1 ? ['control'] : Array.from({ length: poolSize }, (_, i) => `control.${i}`);
    if (dataLane) labels.push('data');
    for (const label of labels) this.lanes.set(label, this.newLane(label));
    const caller = new RoutedCaller({
      pick: (kind, avoid) => this.pick(kind, avoid),
      wait: (_kind, failFast, signal, deadline) => this.whenAnyControlReady(signal, deadline, failFast),
      dialing: () => this.controls().some((link) => link.dialing),
      unavailable: () => this.firstControl().unavailable(),
    });
    this.clients = new TypedClients(caller, context.sessionOptions.clientInterceptors);
  }

  /** `ready` while at least one control connection is; `closed` once removed or stopped. */
  get state(): PeerState {
    return this.peerState;
  }

  /** Round-trip time of the first control connection's last answered ping (keepalive or `ping()`), in ms. */
  get rttMs(): number | undefined {
    return this.firstControl().session?.rttMs;
  }

  /** Open sessions to this peer per lane (`control`, `control.N`, `data`), including ones still finishing calls. */
  get sessions(): Map<string, ReadonlySet<RpcSession>> {
    return new Map([...this.lanes].map(([label, link]) => [label, link.sessions]));
  }

  /** What this peer's connections counted, every lane summed, closed connections included (mesh-stats.ts). */
  stats(): PeerStats {
    const sum = emptySessionStats();
    for (const link of this.lanes.values()) addSessionStats(sum, link.stats());
    return { state: this.peerState, ...sum };
  }

  /** A typed client: calls pick a ready connection (bulk calls the data lane when there is one). */
  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.clients.client(service);
  }

  /** Resolves once a control connection is ready (at once if one is). */
  async whenReady(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const deadline = deadlineOf(options);
    await this.firstControl().whenReady(options.signal, deadline);
  }

  /** @internal */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (const [label, link] of this.lanes) this.startDialing(label, link);
  }

  /** @internal An inbound session from this peer with `label`. */
  offerInbound(session: RpcSession, label: string): void {
    let link = this.lanes.get(label);
    if (link === undefined && LANE_LABEL.test(label) && !this.closed && this.lanes.size < MAX_POOL + 1) {
      link = this.newLane(label);
      this.lanes.set(label, link);
      if (this.started) this.startDialing(label, link);
    }
    if (link === undefined) {
      session.close({ reason: `lane ${JSON.stringify(label)} is not one of this mesh's lanes` }).catch(() => undefined);
      return;
    }
    link.offer(session);
  }

  /** @internal */
  async close(options: { graceMs?: number; reason?: string }): Promise<void> {
    this.closed = true;
    await Promise.all([...this.lanes.values()].map((link) => link.close(options)));
  }

  private newLane(label: string): Link {
    // both nodes keep the connection the designated dialer made; otherwise the newer one wins
    const preferred = (session: RpcSession): boolean => (session.role === 'dialer') === this.dials;
    const link = new Link(`peer ${this.name} (${label})`, this.context.log, (candidate, current) => preferred(candidate) || !preferred(current));
    link.on('state', (event) => this.onLaneState(label, event));
    return link;
  }

  private startDialing(label: string, link: Link): void {
    if (this.url === null) return;
    // fallbackDialAfterMs: Infinity (or past what a timer can count): only the peer dials, as if we had no address
    if (!this.dials && this.context.fallbackDialAfterMs > MAX_TIMER_MS) return;
    const expected = this.name;
    const tls = this.context.tls;
    link.dialWith({
      url: this.url,
      // the address may lead to another node (a typo, a reused address): calls meant for this peer must not run there
      options: {
        ...this.context.sessionOptions,
        // over TLS the node reached must hold a certificate for the name dialed: mesh identity is the name, not the host
        tls: tls === undefined ? undefined : { ...tls, checkServerIdentity: (_host, cert) => dialedNodeMismatch(expected, cert) },
        label,
        readBudgetBytes: this.context.sessionOptions.readBudgetBytes ?? laneReadBudget(label),
        admit: (peer) =>
          peer.nodeName === expected
            ? this.context.admit?.(peer)
            : `${this.url} answered as node ${JSON.stringify(peer.nodeName)}, not ${JSON.stringify(expected)}`,
      },
      reconnect: this.context.reconnect,
      onlyAfterMs: this.dials ? 0 : this.context.fallbackDialAfterMs,
    });
  }

  private onLaneState(lane: string, event: LinkStateEvent): void {
    let state: PeerState;
    const controls = this.controls().map((link) => link.state);
    if (this.closed) state = 'closed';
    else if (controls.includes('ready')) state = 'ready';
    else if (controls.includes('connecting')) state = 'connecting';
    else state = 'backoff';
    const changed = state !== this.peerState;
    this.peerState = state;
    // every lane event is reported (a data lane going down matters), but the peer's own state only on change
    const report: PeerStateEvent = { peer: this.name, state, lane, error: event.error, delayMs: event.delayMs };
    if (changed || lane === 'data' || event.state !== 'ready') this.context.onState(report);
    this.emit('state', report);
  }

  private firstControl(): Link {
    return this.lanes.get('control') ?? this.lanes.get('control.0')!;
  }

  private controls(): Link[] {
    return [...this.lanes].filter(([label]) => label !== 'data').map(([, link]) => link);
  }

  /** The first control connection of the pool to be ready; the other waits are withdrawn once one is. */
  private whenAnyControlReady(signal: AbortSignal | undefined, deadline: number | undefined, failFast: boolean): Promise<RpcSession> {
    const controls = this.controls();
    if (controls.length === 1) return controls[0]!.whenReady(signal, deadline, failFast);
    const done = new AbortController();
    const joined = signal === undefined ? done.signal : AbortSignal.any([signal, done.signal]);
    return Promise.any(controls.map((link) => link.whenReady(joined, deadline, failFast))).then(
      (session) => {
        done.abort();
        return session;
      },
      (failures: AggregateError) => {
        done.abort();
        throw failures.errors[0];
      },
    );
  }

  private pick(kind: MethodKind, avoid?: RpcSession): RpcSession | undefined {
    if (this.closed) return undefined;
    if (kind === 'upload' || kind === 'download') {
      const data = this.lanes.get('data')?.session;
      if (data !== undefined && data.acceptsCalls) return data;
    }
    let best: RpcSession | undefined;
    let bestLoad = Infinity;
    const links = [...this.lanes.values()];
    // start the scan where the last one stopped, so equal loads take turns
    for (let i = 0; i < links.length; i++) {
      const link = links[(this.nextPick + i) % links.length]!;
      if (link === this.lanes.get('data')) continue;
      const session = link.session;
      if (session === undefined || !session.acceptsCalls) continue;
      // the session to avoid counts as fully loaded: taken only when it is the only one
      const load = session === avoid ? Number.MAX_SAFE_INTEGER : session.streamCount;
      if (load < bestLoad) {
        best = session;
        bestLoad = load;
      }
    }
    this.nextPick++;
    return best;
  }
}
