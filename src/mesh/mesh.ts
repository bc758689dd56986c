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
 *
 * Trust: with `tls`, every connection is mutual TLS and a node's name is bound to its certificate in both directions
 * (certificate-name.ts): the dialer checks that the node it reached holds a certificate for the name it dialed, the
 * acceptor that the node that dialed holds one for the name it claims. Without `tls`, anyone who reaches a node's
 * port can claim any name that is one of its peers.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { SecureContextOptions } from 'node:tls';
import { checkConnectOptions, listen, type Server } from '../endpoint/endpoints.js';
import { stderrLog, type LogFn } from '../log.js';
import { withSealedAuth } from '../rpc/auth.js';
import { RpcError } from '../rpc/rpc-error.js';
import { checkCloseOptions, checkMsOption, type RpcSession, type RpcSessionOptions } from '../rpc/rpc-session.js';
import { Status } from '../wire/constants.js';
import type { Refusal, SessionPeer } from '../session/handshake.js';
import { parseAddress } from '../transport/address.js';
import { checkTlsServerOptions } from '../transport/tls.js';
import { dialerNameRefusal } from './certificate-name.js';
import { addSessionStats, emptySessionStats } from '../rpc/session-stats.js';
import { meshStatsOf, type MeshStats } from './mesh-stats.js';
import { resolveReconnectOptions, type ReconnectOptions, type ResolvedReconnectOptions } from '../channel/backoff.js';
import { MAX_POOL, LANE_LABEL, laneReadBudget, MeshPeer, type PeerStateEvent } from './mesh-peer.js';
import { MembershipReconciler } from './membership/reconciler.js';
import type { MembershipChange, MembershipSource } from './membership/membership.js';

export type { PeerState, PeerStateEvent } from './mesh-peer.js';

export interface MeshOptions extends RpcSessionOptions {
  /** This node's name: unique in the mesh, at most 255 UTF-8 bytes. */
  name: string;
  /** Where this node accepts its peers' connections (tcp:// or unix://). Without it, this node only dials. */
  listen?: string;
  /** The other nodes: name -> address, or null for a node that always dials us (we do not know its address). */
  peers?: Record<string, string | null>;
  /**
   * Peers from the user's source of truth, besides `peers`: `dnsMembership()`, `fileMembership()` or the application's
   * own source (a list: the first to name a node wins). Read from start() on; the peers they add are removed when they
   * leave it (after the source's `removeAfterMs`), never the static `peers`, `addPeer()`'s, nor a source's peer the
   * application removed or replaced (docs/OPTIONS.md). Emits `membership` events.
   */
  membership?: MembershipSource | readonly MembershipSource[];
  /** Bulk calls (upload, download) get their own connection per pair, labelled `data`. Default false. */
  dataLane?: boolean;
  /** Control connections per pair; calls go to the one with the fewest streams. Default 1. */
  connectionsPerPeer?: number;
  reconnect?: ReconnectOptions;
  /**
   * The side that normally waits to be dialed dials itself after this long without a connection. Default 3 000; 0
   * dials at once; Infinity never (the peer must dial us).
   */
  fallbackDialAfterMs?: number;
  /** Give up a dial (connect and handshake together) after this long. Default 10 000; Infinity: no bound of its own. */
  connectTimeoutMs?: number;
  /** Where connection trouble is reported. Default: warnings to stderr. */
  log?: LogFn;
  /**
   * Mutual TLS for every connection of the node: Node's TLS options with this node's `key` and `cert` (its certificate
   * must name the node: a SAN DNS or URI entry equal to `name`, or only a CN equal to it) and the cluster's `ca`. The
   * node then listens and dials on tls:// addresses only; `requestCert` is always on.
   */
  tls?: MeshTlsOptions;
}

/**
 * A mesh node's TLS options: what a secure context takes (`key`, `cert`, `ca`, `crl`, `minVersion`, `ciphers`...);
 * the node is both a TLS server and a TLS client with them.
 */
export type MeshTlsOptions = SecureContextOptions & { rejectUnauthorized?: true };

/** True when `self` dials `other`: decided by a hash of the ordered pair, the same on both nodes. */
export function dialsTo(self: string, other: string): boolean {
  const [low, high] = self < other ? [self, other] : [other, self];
  const lowDials = (createHash('sha256').update(`${low}\0${high}`).digest()[0]! & 1) === 1;
  return lowDials === (self === low);
}

export class Mesh extends EventEmitter<{ peer: [PeerStateEvent]; membership: [MembershipChange] }> {
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

  private readonly options: MeshOptions;
  /** What peers removed from the mesh counted (stats()). */
  private readonly removedCounted = emptySessionStats();
  private readonly membership: MembershipReconciler | undefined;

  constructor(options: MeshOptions) {
    super();
    // checked below (checkConnectOptions); kept with the token sealed: util.inspect of a mesh never shows it
    this.options = options = withSealedAuth(options);
    if (typeof options.name !== 'string' || options.name === '') throw new TypeError('mesh name must be a non-empty string');
    const { peers: _p, listen: _l, name, reconnect: _r, dataLane: _d, connectionsPerPeer: _c, fallbackDialAfterMs: _f, admit: _a, tls: _t, membership: _m, ...session } = options;
    this.sessionOptions = { ...session, nodeName: name }; // with `log`: authorize reports to it on dialed sessions too
    // inspect on: a snapshot asked on any connection shows every connection of the node, dialed or accepted
    if (options.inspect !== undefined && options.inspect !== false) this.sessionOptions.inspectScope = () => this.openSessions();
    checkConnectOptions(this.sessionOptions); // a bad option throws here, not at the first connection
    checkMsOption('fallbackDialAfterMs', options.fallbackDialAfterMs, 'never dial a peer that should dial us');
    if (options.tls !== undefined) checkMeshTls(options.tls);
    if (options.listen !== undefined) this.checkAddress(options.listen, 'its listen address'); // a TypeError here, not at start()
    this.name = name;
    // a restarted node is redialed by its peers only (no storm to spread), and a cluster starting up retries briskly
    this.reconnect = resolveReconnectOptions(options.reconnect, { lossSpreadMs: 2_000, initialDelayMs: 250, startupRetryMs: 10_000 });
    this.log = options.log ?? stderrLog;
    this.poolSize = options.connectionsPerPeer ?? 1;
    if (!Number.isInteger(this.poolSize) || this.poolSize < 1 || this.poolSize > MAX_POOL) {
      throw new RangeError(`connectionsPerPeer must be an integer in 1..${MAX_POOL}, got ${this.poolSize}`);
    }
    for (const [name, url] of Object.entries(options.peers ?? {})) this.addPeer(name, url);
    if (options.membership !== undefined) this.membership = new MembershipReconciler(options.membership, this.membershipTarget());
  }

  /** The listening address (with the real port when 0 was asked for), once started. */
  get url(): string | undefined {
    return this.server?.url;
  }

  /**
   * What the node's connections counted: per peer (its lanes summed, closed connections kept) and in total. A plain
   * object, computed when asked (mesh-stats.ts).
   */
  stats(): MeshStats {
    return meshStatsOf(this.peerHandles.values(), this.removedCounted);
  }

  /** Every session of the node's peers, every lane (what an inspect snapshot shows). */
  private *openSessions(): Generator<RpcSession> {
    for (const peer of this.peerHandles.values()) for (const lane of peer.sessions.values()) yield* lane;
  }

  /** Names of the peers. */
  get peerNames(): string[] {
    return [...this.peerHandles.keys()];
  }

  /** Starts listening, then dialing. Resolves once listening; peers connect in the background (see `peer().whenReady`). */
  start(): Promise<void> {
    if (this.started) return Promise.reject(new RpcError(Status.FAILED_PRECONDITION, 'mesh.start() was already called'));
    if (this.stopped) return Promise.reject(new RpcError(Status.FAILED_PRECONDITION, 'the mesh is stopped; create a new Mesh to start again'));
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
        tls: this.options.tls === undefined ? undefined : { ...this.options.tls, requestCert: true },
        // the lane of an inbound connection is known from the dialer's HELLO: the same budget on both sides
        readBudgetBytes: this.sessionOptions.readBudgetBytes ?? ((peer) => laneReadBudget(peer.label)),
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
    this.membership?.start();
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
    if (url !== null) this.checkAddress(url, `peer ${JSON.stringify(name)}'s address`); // a TypeError here, not a peer redialing it for ever
    const dialer = dialsTo(this.name, name);
    const peer = MeshPeer.create(name, url, dialer, this.poolSize, this.options.dataLane === true, {
      reconnect: this.reconnect,
      log: this.log,
      // a node nobody can dial (no listen address) dials at once, whichever side the hash picked
      fallbackDialAfterMs: this.options.listen === undefined ? 0 : (this.options.fallbackDialAfterMs ?? 3_000),
      sessionOptions: this.sessionOptions,
      tls: this.options.tls,
      onState: (event) => this.emit('peer', event),
      admit: this.options.admit,
    });
    this.peerHandles.set(name, peer);
    if (this.started) peer.start();
    return peer;
  }

  /** Removes a peer: its connections close gracefully, calls waiting for it fail UNAVAILABLE, it can no longer connect. */
  async removePeer(name: string, options: { graceMs?: number } = {}): Promise<void> {
    checkCloseOptions(options);
    const peer = this.peerHandles.get(name);
    if (peer === undefined) return;
    this.peerHandles.delete(name);
    await peer.close({ ...options, reason: `node ${this.name} removed ${name} from its mesh` });
    const last = peer.stats();
    last.connections = last.streamsOpen = last.creditStalls.blockedNow = 0;
    addSessionStats(this.removedCounted, last);
  }

  /** Stops: no new connections; every connection closes gracefully (calls in flight get graceMs, default 10 s). */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    checkCloseOptions(options); // before anything stops: a bad option stops nothing
    this.stopped = true;
    this.membership?.stop(); // no read, timer or watch of a source outlives the mesh
    await this.starting?.catch(() => undefined); // a start() still binding closes its listener itself, then returns
    const peers = [...this.peerHandles.values()];
    await Promise.all([...peers.map((peer) => peer.close({ ...options, reason: `node ${this.name} is stopping` })), this.server?.close(options)]);
  }

  /** What membership sources change the mesh through (membership/reconciler.ts). */
  private membershipTarget(): ConstructorParameters<typeof MembershipReconciler>[1] {
    return {
      name: this.name,
      scheme: this.options.tls === undefined ? 'tcp' : 'tls',
      log: this.log,
      peer: (name) => this.peerHandles.get(name),
      checkAddress: (url) => this.checkAddress(url, 'a membership address'),
      listenUrl: () => this.server?.url,
      addPeer: (name, url) => this.addPeer(name, url),
      removePeer: (name, graceMs) => this.removePeer(name, { graceMs }),
      changed: (change) => this.emit('membership', change),
    };
  }

  /**
   * A malformed address, or one whose scheme does not fit the node's `tls` (tls:// with it, tcp:// or unix:// without):
   * a TypeError naming `what`.
   */
  private checkAddress(url: string, what: string): void {
    const address = parseAddress(url);
    if (this.options.tls !== undefined && address.kind !== 'tls') {
      throw new TypeError(`mesh ${JSON.stringify(this.options.name)} has tls options, so ${what} must be tls://host:port, not ${JSON.stringify(url)}`);
    }
    if (this.options.tls === undefined && address.kind === 'tls') {
      throw new TypeError(`${what} ${JSON.stringify(url)} is a TLS address: give mesh ${JSON.stringify(this.options.name)} its tls options (key, cert, ca)`);
    }
  }

  /**
   * Runs as a dialer's HELLO is accepted (after its auth token, if `auth` is set), before any call on it is read and
   * before our HELLO answers it: strangers never reach a handler. The listener logs each refusal (GW_ERR_REFUSED,
   * GW_ERR_UNAUTHENTICATED for a certificate that does not name the node it claims to be).
   */
  private admit(peer: SessionPeer): string | Refusal | undefined {
    return this.meshRefusal(peer) ?? this.options.admit?.(peer);
  }

  /** The mesh's own checks of a node that dialed, in order: its certificate (over TLS), its name, its lane. */
  private meshRefusal(peer: SessionPeer): string | Refusal | undefined {
    // over TLS, who dialed is who its certificate says: the name in its HELLO is only a claim
    const impostor = this.options.tls === undefined ? undefined : dialerNameRefusal(peer.nodeName, peer.identity);
    if (impostor !== undefined) return { reason: impostor, status: Status.UNAUTHENTICATED };
    if (!this.peerHandles.has(peer.nodeName)) return `node ${JSON.stringify(peer.nodeName)} is not a peer of ${this.name}`;
    if (!LANE_LABEL.test(peer.label)) return `lane ${JSON.stringify(peer.label)} is not one of this mesh's lanes (control, control.N, data)`;
    return undefined;
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

/** A mesh's tls options: usable for a listener with a certificate (key and cert), and never without client certificates. */
function checkMeshTls(tls: MeshTlsOptions): void {
  if ((tls as { requestCert?: unknown }).requestCert === false) {
    throw new TypeError('tls.requestCert: false is refused for a mesh: its TLS is always mutual (every node presents its certificate)');
  }
  // without it Node trusts its bundled public roots both ways: a certificate for "n2" from any public CA would be n2
  if ((tls as { ca?: unknown }).ca === undefined) {
    throw new TypeError("tls.ca is required for a mesh: the cluster's CA, the only one its nodes' certificates may chain to (without it, every publicly trusted CA would be one)");
  }
  checkTlsServerOptions(tls);
}
