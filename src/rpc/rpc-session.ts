/**
 * A session with services: holds the core Session (privately: users and the layers above see only what this class
 * exposes), routes the peer's streams to this side's handlers, and makes typed clients for the peer's services.
 * Either side of a connection can do both.
 */
import { Status } from '../wire/constants.js';
import type { PeerHello, Refusal, SessionPeer } from '../session/handshake.js';
import { resolveSessionOptions, type SessionOptions } from '../session/options.js';
import type { Role } from '../session/role.js';
import { Session, type IncomingStream } from '../session/session.js';
import type { Transport } from '../transport/transport.js';
import { CallCounters } from './call-stats.js';
import { sessionStatsOf, type SessionStats } from './session-stats.js';
import { stallThresholdOf, type InspectOption } from './inspect/inspect-service.js';
import { watchStalls, withInspectService } from './inspect/inspect-serving.js';
import type { InspectedSession } from './inspect/snapshot-of.js';
import { SessionCaller, type Caller } from './client/caller.js';
import type { ClientInterceptor } from './client/outgoing-call.js';
import { TypedClients, type Client } from './client/typed-client.js';
import { rpcErrorOf } from './connection-error.js';
import { checkInterceptors } from './interceptor.js';
import type { LogFn } from '../log.js';
import { admissionOf, checkAuthOption, helloToken, type AuthOptions } from './auth.js';
import { callAuthorizer, type Authorize } from './server/authorize.js';
import type { ServerInterceptor } from './server/interceptor.js';
import { DrainWatch } from './server/draining.js';
import { checkServices, Registry, type ServiceImpl } from './server/registry.js';
import { ServerCall, type ServerHost } from './server/server-call.js';
import type { MethodMap, ServiceDef } from './service.js';

export interface RpcSessionOptions extends SessionOptions {
  /** Services this side offers to the peer. */
  services?: readonly ServiceImpl[];
  /**
   * Decides from the peer's handshake (node name, label, address) whether it may use this connection, before any of
   * its calls is read: return a reason to refuse it (sent to the peer in the GOAWAY; its `connect()` rejects with
   * PERMISSION_DENIED), `{ reason, status: Status.UNAUTHENTICATED }` for credentials that do not prove who it says it
   * is, undefined to admit it.
   */
  admit?: (peer: SessionPeer) => string | Refusal | undefined;
  /**
   * Wrap every call this side makes (its typed clients' calls: a session's, a channel's, a mesh peer's), first one
   * outermost: `(next) => async (call) => next(call)`. Default none.
   */
  clientInterceptors?: readonly ClientInterceptor[];
  /** Wrap every call this side's `services` handle, before and after the handler, first one outermost. Default none. */
  serverInterceptors?: readonly ServerInterceptor[];
  /**
   * Token authentication in the handshake. `{ token }`: sent when this side dials, required (compared in constant
   * time) when it accepts. `{ verify(token, peer) }` (accepting only; async allowed): true admits the dialer. A dialer
   * without the right token is refused before anything of it is read: its `connect()` rejects UNAUTHENTICATED. The
   * token is never logged, put in an error message or in `peer`. Default: no authentication.
   */
  auth?: AuthOptions;
  /**
   * Decides for every call this side's `services` handle, once per call, as it opens: before anything of its request
   * is read (decoded, validated; an upload's bulk window granted), any interceptor and the handler. `true` lets it
   * run, a string refuses it with PERMISSION_DENIED and that reason. `ctx.method` is the path exactly as routing
   * matched it (unknown paths are UNIMPLEMENTED and never get here), `ctx.peer` who called, `ctx.metadata` the request
   * metadata. A promise may answer later: what the caller sends meanwhile waits within the stream's initial windows.
   * A throw is PERMISSION_DENIED "authorization failed" (logged). Default: every call runs.
   */
  authorize?: Authorize;
  /** Where this side reports what it refuses (authorize failing, a listener's closed connections). Default: warnings to stderr. */
  log?: LogFn;
  /**
   * Live introspection (`gridwire inspect`): serve the built-in service `gridwire.inspect.v1` (connections, streams,
   * credit, stalls; behind `authorize`, which sees `gridwire.inspect.v1/snapshot`), and watch for streams blocked on
   * flow-control credit longer than `stallThresholdMs` (default 5000; 1..3600000), each logged once as a warning.
   * Default off. A snapshot shows peers' names and addresses: refuse it in `authorize` to peers that must not see them.
   */
  inspect?: InspectOption;
  /** @internal The sessions an inspect snapshot covers (a mesh: all of its own); default the listener's, or the session's. */
  inspectScope?: () => Iterable<InspectedSession>;
}

/** @internal Throws for a bad option: called where options are first given (listen, connect, channel, Mesh), not at a redial. */
export function checkRpcSessionOptions(options: RpcSessionOptions): void {
  resolveSessionOptions(options);
  checkServices(options.services);
  checkInterceptors(options.clientInterceptors, 'clientInterceptors');
  checkInterceptors(options.serverInterceptors, 'serverInterceptors');
  checkAuthOption(options.auth);
  stallThresholdOf(options.inspect);
  if (options.authorize !== undefined && typeof options.authorize !== 'function') throw new TypeError('authorize must be a function (ctx) => true | reason');
}

/**
 * @internal Throws a RangeError naming `name` unless `value` is undefined (the default) or a number of ms: 0 or more,
 * above 0 when `positive`. Infinity (or anything past setTimeout's 2^31-1) is allowed and means "no limit"; each
 * option's user says what that is (`unlimited`, for the message), and skips its timer rather than arm one that Node
 * would fire after 1 ms.
 */
export function checkMsOption(name: string, value: unknown, unlimited: string, positive = false): void {
  if (value === undefined) return;
  if (typeof value === 'number' && value >= 0 && !(positive && value === 0)) return; // NaN fails both comparisons
  const shown = typeof value === 'number' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : typeof value;
  throw new RangeError(`${name} must be a number of ms, ${positive ? 'above 0' : '0 or more'} (Infinity: ${unlimited}), got ${shown}`);
}

/** @internal Checks a close()'s options before anything closes: graceMs (0: fail calls at once; Infinity: wait for them). */
export function checkCloseOptions(options: { graceMs?: number } | undefined): void {
  checkMsOption('graceMs', options?.graceMs, 'wait until the calls in flight finish');
}

export class RpcSession {
  /** The connection underneath: private, so no user (and no layer above) writes frames or moves windows. */
  private readonly session: Session;
  private readonly registry: Registry;
  /** @internal Starts calls on this connection: what a channel or mesh peer wraps. */
  readonly caller: Caller;
  private readonly clients: TypedClients;
  /** What this session's incoming calls run on. */
  private readonly host: ServerHost;
  private readyPromise: Promise<void> | undefined;
  /** The calls made and served on this connection, by method and status (call-stats.ts). */
  private readonly calls = new CallCounters();

  constructor(transport: Transport, role: Role, options?: RpcSessionOptions);
  /** @internal `registry`: one built once by a listener and shared by all its sessions. */
  constructor(transport: Transport, role: Role, options: RpcSessionOptions | undefined, registry: Registry);
  constructor(transport: Transport, role: Role, options: RpcSessionOptions = {}, registry?: Registry) {
    const stallThresholdMs = stallThresholdOf(options.inspect);
    const inspectScope = options.inspectScope ?? ((): Iterable<InspectedSession> => [this]);
    this.registry = registry ?? new Registry(withInspectService(options.services, stallThresholdMs, options.nodeName ?? '', inspectScope), options.serverInterceptors);
    checkAuthOption(options.auth, role === 'dialer');
    const hooks = { onStream: this.onStream, admit: admissionOf(options.auth, options.admit, role), authToken: helloToken(options.auth, role) };
    this.session = new Session(transport, role, hooks, options);
    this.host = {
      core: this.session, session: this, drain: new DrainWatch(this.session), authorize: callAuthorizer(options.authorize, options.log), calls: this.calls,
    };
    this.caller = new SessionCaller(this.session, this.calls);
    this.clients = new TypedClients(this.caller, options.clientInterceptors);
    if (stallThresholdMs !== undefined) watchStalls(this.session, stallThresholdMs, options.log);
  }

  /** @internal The core session, for tests that look inside it; nothing in src/ outside rpc/ uses it. */
  get core(): Session {
    return this.session;
  }

  /**
   * Resolves when the handshake is done; rejects with an RpcError when it fails: UNAUTHENTICATED (the peer refused our
   * credentials), PERMISSION_DENIED (the peer refused us, or we refused it), FAILED_PRECONDITION (no common protocol
   * version), UNAVAILABLE (the peer hung up or timed out, or the session was closed first).
   */
  get ready(): Promise<void> {
    if (this.readyPromise === undefined) {
      this.readyPromise = this.session.ready.catch((error: unknown) => {
        throw rpcErrorOf(error);
      });
      this.readyPromise.catch(() => undefined); // reported to whoever awaits it; never an unhandled rejection
    }
    return this.readyPromise;
  }

  /** Resolves when the connection is closed, with the error that closed it (undefined when clean). */
  get closed(): Promise<Error | undefined> {
    return this.session.closed;
  }

  /** Why the connection closed (or is closing), once it has; undefined while it is open or when it closed cleanly. */
  get error(): Error | undefined {
    return this.session.error;
  }

  /** Resolves when the session stops taking new calls (closing, GOAWAY from the peer, failure); calls in flight may go on. */
  get goingAway(): Promise<void> {
    return this.session.goingAway;
  }

  /** The reason the peer gave in its GOAWAY, once it sent one. */
  get goawayReason(): string | undefined {
    return this.session.peerGoawayMessage;
  }

  /** True while new calls may start on this session. */
  get acceptsCalls(): boolean {
    return this.session.acceptsStreams;
  }

  /** `dialer` (this side connected) or `acceptor` (the peer connected to it). */
  get role(): Role {
    return this.session.role;
  }

  /** Calls in progress on this connection, both directions (including ours waiting for a concurrency slot). */
  get streamCount(): number {
    return this.session.streamCount;
  }

  /** Who the peer is, from its handshake: node name, connection label, address. */
  get peer(): SessionPeer {
    return this.session.peer;
  }

  /**
   * What the peer announced in its HELLO (its limits: frame, message and window sizes, concurrent streams; its node
   * name, label and features; never a credential) and the protocol version in use; undefined until the handshake.
   */
  get peerHello(): PeerHello | undefined {
    return this.session.peerHello;
  }

  /** Round-trip time of the last answered ping (keepalive or `ping()`), in ms. */
  get rttMs(): number | undefined {
    return this.session.rttMs;
  }

  /**
   * What this connection has counted: calls made and served by method and status (in flight too), bytes both ways,
   * streams open, credit stalls, RTT. A plain object (JSON as it is), computed when asked; counting costs the calls
   * nothing measurable (a few increments each).
   */
  stats(): SessionStats {
    return sessionStatsOf(this.session.counts(), this.calls.snapshot(), this.session.phaseName !== 'closed', this.session.rttMs);
  }

  /** A typed client for a service the peer serves. */
  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.clients.client(service);
  }

  /**
   * Measures the round-trip time in ms. Rejects with an RpcError: UNAVAILABLE once the session is closing or closed
   * (retrySafe when the PING was never sent), RESOURCE_EXHAUSTED while 16 pings already await a reply.
   */
  ping(): Promise<number> {
    return this.session.ping().catch(failWithRpcError);
  }

  /**
   * Graceful close: no new calls; calls in flight finish (up to graceMs, default 10 s; Infinity waits for them
   * however long they take); then the connection closes. A graceMs that is not a number of ms, 0 or more, rejects
   * with a RangeError before anything closes.
   * `reason` travels to the peer in the GOAWAY.
   */
  close(options?: { graceMs?: number; reason?: string }): Promise<void> {
    try {
      checkCloseOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.session.close(options);
  }

  /** Closes at once; calls in flight fail with UNAVAILABLE. */
  destroy(error?: Error): void {
    this.session.destroy(error);
  }

  private readonly onStream = (incoming: IncomingStream): void => {
    const { stream, method } = incoming;
    const route = this.registry.find(method);
    if (route === undefined) {
      this.calls.unknownServed.failedToStart(Status.UNIMPLEMENTED); // one label for every name the peer makes up
      stream.reset(Status.UNIMPLEMENTED, `method ${JSON.stringify(method.slice(0, 300))} is not implemented by this peer`);
      this.session.release(stream);
      return;
    }
    const call = new ServerCall(this.host, stream, route, incoming.metadata, incoming.deadlineMs);
    stream.events = call;
    call.start();
  };
}

function failWithRpcError(error: unknown): never {
  throw rpcErrorOf(error);
}

/** A session over any Transport (an in-memory pair, a custom duplex). Await `session.ready` before calling. */
export function createSession(transport: Transport, role: Role, options: RpcSessionOptions = {}): RpcSession {
  return new RpcSession(transport, role, options);
}
