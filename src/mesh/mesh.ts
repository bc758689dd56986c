/**
 * The mesh: named nodes, one connection per pair (per lane), either side calls on it.
 *
 * Who dials is decided by a hash of the pair of names, so both nodes agree without talking and the dialing is spread
 * over the cluster. The other side dials only as a fallback, after `fallbackDialAfterMs` without a connection (it
 * may be the only one that knows the address). When both dial anyway, both keep the connection the designated dialer
 * made and close the other with a GOAWAY that says so, so a pair always settles on one connection per lane.
 *
 * Lanes: the `control` connection (or a pool of them, `control.0`..`control.N-1`) carries every call, except bulk
 * calls (upload, download) when a `data` lane is configured: they get their own TCP connection, so a transfer never
 * queues control calls behind its bytes in the kernel's buffers.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { listen, type Server } from '../endpoints.js';
import { stderrLog, type LogFn } from '../log.js';
import { resolveSessionOptions } from '../session/options.js';
import type { Client, RpcSession, RpcSessionOptions } from '../rpc/rpc-session.js';
import type { SessionPeer } from '../session/session.js';
import type { MethodKind, MethodMap, ServiceDef } from '../rpc/service.js';
import { resolveReconnectOptions, type ReconnectOptions, type ResolvedReconnectOptions } from './backoff.js';
import { Link, type LinkState, type LinkStateEvent } from './link.js';
import { RoutedClients } from './routed-client.js';

export interface MeshOptions extends RpcSessionOptions {
  /** This node's name: unique in the mesh, at most 255 UTF-8 bytes. */
  name: string;
  /** Where this node accepts its peers' connections (tcp:// or unix://). Without it, this node only dials. */
  listen?: string;
  /** The other nodes: name -> address, or null for a node that always dials us (we do not know its address). */
  peers?: Record<string, string | null>;
  /** Bulk calls (upload, download) get their own connection per pair, labelled `data`. Default false. */
  dataLane?: boolean;
  /** Control connections per pair; calls go to the one with the fewest streams. Default 1. */
  connectionsPerPeer?: number;
  reconnect?: ReconnectOptions;
  /** The side that normally waits to be dialed dials itself after this long without a connection. Default 3 000. */
  fallbackDialAfterMs?: number;
  /** Give up a dial after this long. Default 10 000. */
  connectTimeoutMs?: number;
  /** Where connection trouble is reported. Default: warnings to stderr. */
  log?: LogFn;
}

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

const MAX_POOL = 64;
const LANE_LABEL = /^(control(\.\d{1,2})?|data)$/;

/** True when `self` dials `other`: decided by a hash of the ordered pair, the same on both nodes. */
export function dialsTo(self: string, other: string): boolean {
  const [low, high] = self < other ? [self, other] : [other, self];
  const lowDials = (createHash('sha256').update(`${low}\0${high}`).digest()[0]! & 1) === 1;
  return lowDials === (self === low);
}

export class Mesh extends EventEmitter<{ peer: [PeerStateEvent] }> {
  readonly name: string;
  private readonly peerHandles = new Map<string, MeshPeer>();
  private readonly reconnect: ResolvedReconnectOptions;
  private readonly log: LogFn;
  private readonly poolSize: number;
  private server: Server | undefined;
  private started = false;
  private starting: Promise<void> | undefined;
  private stopped = false;
  /** What every session of this node is made with: the options minus the mesh's own, with our name. */
  private readonly sessionOptions: RpcSessionOptions;

  constructor(private readonly options: MeshOptions) {
    super();
    if (typeof options.name !== 'string' || options.name === '') throw new TypeError('mesh name must be a non-empty string');
    const { peers: _p, listen: _l, name, reconnect: _r, dataLane: _d, connectionsPerPeer: _c, fallbackDialAfterMs: _f, log: _log, admit: _a, ...session } = options;
    this.sessionOptions = { ...session, nodeName: name };
    resolveSessionOptions(this.sessionOptions); // a bad option throws here, not at the first connection
    this.name = name;
    // a restarted node is redialed by its peers only (no storm to spread), and a cluster starting up retries briskly
    this.reconnect = resolveReconnectOptions(options.reconnect, { lossSpreadMs: 2_000, initialDelayMs: 250, startupRetryMs: 10_000 });
    this.log = options.log ?? stderrLog;
    this.poolSize = options.connectionsPerPeer ?? 1;
    if (!Number.isInteger(this.poolSize) || this.poolSize < 1 || this.poolSize > MAX_POOL) {
      throw new RangeError(`connectionsPerPeer must be an integer in 1..${MAX_POOL}, got ${this.poolSize}`);
    }
    for (const [name, url] of Object.entries(options.peers ?? {})) this.addPeer(name, url);
  }

  /** The listening address (with the real port when 0 was asked for), once started. */
  get url(): string | undefined {
    return this.server?.url;
  }

  /** Names of the peers. */
  get peerNames(): string[] {
    return [...this.peerHandles.keys()];
  }

  /** Starts listening, then dialing. Resolves once listening; peers connect in the background (see `peer().whenReady`). */
  start(): Promise<void> {
    if (this.started) return Promise.reject(new Error('mesh.start() was already called'));
    if (this.stopped) return Promise.reject(new Error('the mesh is stopped; create a new Mesh to start again'));
    this.started = true;
    this.starting = this.bindAndDial().catch((error: unknown) => {
      this.started = false; // binding failed (address in use...): start() may be called again
      throw error;
    });
    return this.starting;
  }

  private async bindAndDial(): Promise<void> {
    if (this.options.listen !== undefined) {
      this.server = await listen(this.options.listen, {
        ...this.sessionOptions,
        log: this.log,
        admit: (peer) => this.admit(peer),
        onSession: (session) => this.onInbound(session),
      });
    }
    if (this.stopped) {
      await this.server?.close({ graceMs: 0 }); // stop() ran while we were binding: it could not close this yet
      return;
    }
    for (const peer of this.peerHandles.values()) peer.start();
  }

  /** The handle on a peer: usable at once, before (and between) connections. Throws for a name not in the mesh. */
  peer(name: string): MeshPeer {
    const peer = this.peerHandles.get(name);
    if (peer === undefined) throw new RangeError(`no peer named ${JSON.stringify(name)} in mesh ${JSON.stringify(this.name)}; add it with addPeer()`);
    return peer;
  }

  /** Adds a peer at runtime (or before start). `url` null: the peer dials us. */
  addPeer(name: string, url: string | null): MeshPeer {
    if (name === this.name) throw new RangeError(`a node cannot be its own peer (${JSON.stringify(name)})`);
    if (this.peerHandles.has(name)) throw new RangeError(`peer ${JSON.stringify(name)} is already in the mesh`);
    if (this.stopped) throw new Error('the mesh is stopped');
    const dialer = dialsTo(this.name, name);
    const peer = new MeshPeer(name, url, dialer, this.poolSize, this.options.dataLane === true, {
      reconnect: this.reconnect,
      log: this.log,
      // a node nobody can dial (no listen address) dials at once, whichever side the hash picked
      fallbackDialAfterMs: this.options.listen === undefined ? 0 : (this.options.fallbackDialAfterMs ?? 3_000),
      sessionOptions: this.sessionOptions,
      onState: (event) => this.emit('peer', event),
      admit: this.options.admit,
    });
    this.peerHandles.set(name, peer);
    if (this.started) peer.start();
    return peer;
  }

  /** Removes a peer: its connections close gracefully, calls waiting for it fail UNAVAILABLE, it can no longer connect. */
  async removePeer(name: string, options: { graceMs?: number } = {}): Promise<void> {
    const peer = this.peerHandles.get(name);
    if (peer === undefined) return;
    this.peerHandles.delete(name);
    await peer.close({ ...options, reason: `node ${this.name} removed ${name} from its mesh` });
  }

  /** Stops: no new connections; every connection closes gracefully (calls in flight get graceMs, default 10 s). */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    this.stopped = true;
    await this.starting?.catch(() => undefined); // a start() still binding closes its listener itself, then returns
    const peers = [...this.peerHandles.values()];
    await Promise.all([...peers.map((peer) => peer.close({ ...options, reason: `node ${this.name} is stopping` })), this.server?.close(options)]);
  }

  /** Runs as a connection's handshake completes, before any call on it is read: strangers never reach a handler. */
  private admit(peer: SessionPeer): string | undefined {
    let refusal: string | undefined;
    if (!this.peerHandles.has(peer.nodeName)) refusal = `node ${JSON.stringify(peer.nodeName)} is not a peer of ${this.name}`;
    else if (!LANE_LABEL.test(peer.label)) refusal = `lane ${JSON.stringify(peer.label)} is not one of this mesh's lanes (control, control.N, data)`;
    refusal ??= this.options.admit?.(peer);
    if (refusal !== undefined) this.log('warn', `refused a connection from ${peer.address}: ${refusal}`);
    return refusal;
  }

  private onInbound(session: RpcSession): void {
    const peer = this.peerHandles.get(session.peer.nodeName);
    if (peer === undefined) {
      // removed between its handshake and now
      session.close({ reason: `node ${JSON.stringify(session.peer.nodeName)} is not a peer of ${this.name}` }).catch(() => undefined);
      return;
    }
    peer.offerInbound(session, session.peer.label);
  }
}

interface PeerContext {
  /** The application's own admission check (MeshOptions.admit), after the mesh's. */
  admit?: (peer: SessionPeer) => string | undefined;
  reconnect: ResolvedReconnectOptions;
  log: LogFn;
  fallbackDialAfterMs: number;
  /** The node's session options (with its name), for every dial. */
  sessionOptions: RpcSessionOptions;
  onState(event: PeerStateEvent): void;
}

/** One peer of a mesh: its lanes, its state, and typed clients whose calls pick a lane and a connection. */
export class MeshPeer extends EventEmitter<{ state: [PeerStateEvent] }> {
  private readonly lanes = new Map<string, Link>();
  private readonly clients: RoutedClients;
  private peerState: PeerState = 'connecting';
  private nextPick = 0;
  private started = false;
  private closed = false;

  constructor(
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
    this.clients = new RoutedClients({
      pick: (kind, avoid) => this.pick(kind, avoid),
      wait: (_kind, failFast, signal, deadline) => this.whenAnyControlReady(signal, deadline, failFast),
      dialing: () => this.controls().some((link) => link.dialing),
      unavailable: () => this.firstControl().unavailable(),
    });
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

  /** A typed client: calls pick a ready connection (bulk calls the data lane when there is one). */
  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.clients.client(service);
  }

  /** Resolves once a control connection is ready (at once if one is). */
  async whenReady(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
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
    const preferred = (session: RpcSession): boolean => (session.core.role === 'dialer') === this.dials;
    const link = new Link(`peer ${this.name} (${label})`, this.context.log, (candidate, current) => preferred(candidate) || !preferred(current));
    link.on('state', (event) => this.onLaneState(label, event));
    return link;
  }

  private startDialing(label: string, link: Link): void {
    if (this.url === null) return;
    const expected = this.name;
    link.dialWith({
      url: this.url,
      // the address may lead to another node (a typo, a reused address): calls meant for this peer must not run there
      options: {
        ...this.context.sessionOptions,
        label,
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
      const load = session === avoid ? Number.MAX_SAFE_INTEGER : session.core.streamCount;
      if (load < bestLoad) {
        best = session;
        bestLoad = load;
      }
    }
    this.nextPick++;
    return best;
  }
}
