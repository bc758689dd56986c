/**
 * The Node front doors: `listen` accepts connections and gives each a session with the server's services; `connect`
 * dials and resolves once the handshake is done. Both sides of a connection can serve and call. This is the one
 * module that ties node:net transports to the core; the core itself (wire, session, rpc) takes any Transport.
 */
import { Status } from '../wire/constants.js';
import { ProtocolError } from '../wire/errors.js';
import { stderrLog, type LogFn } from '../log.js';
import { parseAddress } from '../transport/address.js';
import { dial, listenOn, type DialOptions, type Listener, type ListenOnOptions } from '../transport/net.js';
import type { Transport } from '../transport/transport.js';
import { checkAuthOption } from '../rpc/auth.js';
import { rpcErrorOf } from '../rpc/connection-error.js';
import { RpcError } from '../rpc/rpc-error.js';
import { Registry } from '../rpc/server/registry.js';
import { limitTimer } from '../timers.js';
import { checkCloseOptions, checkMsOption, checkRpcSessionOptions, RpcSession, type RpcSessionOptions } from '../rpc/rpc-session.js';
import { checkListenerLimits, ListenerLimits, type ListenerLimitOptions } from './listener-limits.js';

export interface ListenOptions extends RpcSessionOptions, ListenerLimitOptions {
  /** Called for every accepted session once its handshake is done. */
  onSession?: (session: RpcSession) => void;
  /** Where connections refused or closed for a protocol error are reported. Default: warnings to stderr. */
  log?: LogFn;
}

export interface Server {
  /** The bound address (with the real port when 0 was asked for). */
  readonly url: string;
  /** Sessions currently open, once their handshake is done (a dialer still being admitted is not one of them). */
  readonly sessions: ReadonlySet<RpcSession>;
  /** Stops accepting, closes every session gracefully (GOAWAY; calls in flight finish within graceMs). */
  close(options?: { graceMs?: number }): Promise<void>;
}

export async function listen(url: string, options: ListenOptions = {}): Promise<Server> {
  parseAddress(url); // a malformed address rejects with its TypeError before anything else
  checkRpcSessionOptions(options); // a bad option throws here, not inside the accept callback of the first connection
  checkListenerLimits(options);
  const registry = new Registry(options.services, options.serverInterceptors);
  const sessions = new Set<RpcSession>();
  const handshaking = new Set<RpcSession>(); // not yet in `sessions`: a dialer's claimed name is not yet admitted
  const log = options.log ?? stderrLog;
  const limits = new ListenerLimits(options, () => listener.url, log);
  const listener: Listener = await bind(url, { maxConnections: limits.maxConnections, onDrop: limits.dropped }, (transport) => {
    let session: RpcSession;
    try {
      session = new RpcSession(transport, 'acceptor', options, registry);
    } catch {
      transport.destroy();
      return;
    }
    handshaking.add(session);
    limits.handshakeStarted(session.ready, () => transport.destroy());
    void session.closed.then((error) => {
      handshaking.delete(session);
      sessions.delete(session);
      // the handshake runs in the session, never in this accept callback: one slow or bogus client blocks nobody;
      // a dialer we refused (GW_ERR_UNAUTHENTICATED, GW_ERR_REFUSED) is one line too, with the reason, never a token
      if (error instanceof ProtocolError) log('warn', `closed the connection from ${transport.peer.address}: ${error.message}`);
    });
    session.ready
      .then(
        () => {
          if (!handshaking.delete(session)) return; // closed in the meantime
          sessions.add(session);
          options.onSession?.(session);
        },
        () => undefined,
      )
      // onSession is application code: if it throws, that session is not set up, so close it, rather than let the
      // error become an unhandled rejection (which ends a Node process)
      .catch((error: unknown) => session.destroy(error instanceof Error ? error : new Error(String(error))));
  });
  return {
    url: listener.url,
    sessions,
    async close(closeOptions) {
      checkCloseOptions(closeOptions); // before the listener stops: a bad option closes nothing
      limits.close();
      const closing = listener.close();
      await Promise.all([...sessions, ...handshaking].map((s) => s.close(closeOptions)));
      await closing;
    },
  };
}

/**
 * listenOn, with a failure to bind (address in use, no permission) as an UNAVAILABLE RpcError whose cause is Node's
 * error (`cause.code` is `EADDRINUSE`...). An address that is not one throws its TypeError as it is: that is a mistake
 * in the program, not a condition to handle.
 */
async function bind(url: string, options: ListenOnOptions, onTransport: (transport: Transport) => void): Promise<Listener> {
  try {
    return await listenOn(url, onTransport, options);
  } catch (error) {
    if (error instanceof TypeError) throw error;
    throw new RpcError(Status.UNAVAILABLE, `cannot listen on ${url}: ${(error as Error).message}`, { cause: error });
  }
}

export interface ConnectOptions extends RpcSessionOptions, DialOptions {}

/**
 * @internal Throws for a bad option of connect(), channel() or a Mesh: the session's options, `auth` (a dialer sends
 * a token: `auth.verify` alone is a TypeError), and connectTimeoutMs (above 0; Infinity: no bound of ours on the
 * dial, the handshake still bounded by handshakeTimeoutMs).
 */
export function checkConnectOptions(options: ConnectOptions): void {
  checkRpcSessionOptions(options);
  checkAuthOption(options.auth, true);
  checkMsOption('connectTimeoutMs', options.connectTimeoutMs, 'no bound of its own; handshakeTimeoutMs still bounds the handshake', true);
}

/** `connectTimeoutMs` when not given: the dial and the handshake together get this long. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Dials `url` (tcp://host:port or unix:///path) and resolves with a ready session. `connectTimeoutMs` bounds the dial
 * and the handshake together. Failures are UNAVAILABLE, except refusals: UNAUTHENTICATED (the server refused our
 * `auth.token`), PERMISSION_DENIED (it refused who we are, or we refused whom we reached), FAILED_PRECONDITION (no
 * common protocol version). A malformed address or option rejects with a TypeError or RangeError before dialing.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<RpcSession> {
  // before dialing: a malformed address is the caller's mistake (a TypeError naming it and the schemes, not a
  // retry-safe UNAVAILABLE to retry for ever), and a bad option must not leave a socket behind
  parseAddress(url);
  checkConnectOptions(options);
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  let transport: Transport;
  try {
    transport = await dial(url, { ...options, connectTimeoutMs: timeoutMs });
  } catch (error) {
    throw new RpcError(Status.UNAVAILABLE, (error as Error).message, { cause: error, retrySafe: true });
  }
  const session = new RpcSession(transport, 'dialer', options);
  // the signal covers the handshake too: a peer that accepts and never answers must not outlive the caller's abort
  const onAbort = (): void => session.destroy(new Error(`dial ${url}: aborted during the handshake`));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // so does connectTimeoutMs: what is left of it after the dial, not a fresh handshakeTimeoutMs (10 s by default)
  let timedOut = false;
  const timer = limitTimer(Math.max(0, deadline - performance.now()), () => {
    timedOut = true;
    session.destroy(new Error(`no handshake within connectTimeoutMs`));
  });
  try {
    await session.ready;
  } catch (error) {
    session.destroy();
    if (timedOut) throw connectTimeoutError(url, timeoutMs, error);
    throw handshakeError(url, error);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
  return session;
}

/**
 * The peer took the connection but did not finish the handshake within connectTimeoutMs. UNAVAILABLE, like a dial
 * that times out (the same option, the same status wherever it fires), and retry-safe: no call was sent. Not
 * DEADLINE_EXCEEDED, which is a call's own deadline.
 */
function connectTimeoutError(url: string, timeoutMs: number, cause: unknown): RpcError {
  const message = `connect ${url}: the peer accepted the connection but did not complete the handshake within connectTimeoutMs (${timeoutMs} ms)`;
  return new RpcError(Status.UNAVAILABLE, message, { cause, retrySafe: true });
}

/**
 * A version mismatch will not heal by retrying: FAILED_PRECONDITION (upgrade one side first). A refusal keeps its
 * status (UNAUTHENTICATED, PERMISSION_DENIED). Anything else that ends a handshake (a timeout, a peer that hung up) is
 * UNAVAILABLE.
 */
export function handshakeError(url: string, error: unknown): RpcError {
  const { code, rawMessage, cause, retrySafe } = rpcErrorOf(error); // the cause: the ProtocolError or SessionError underneath
  return new RpcError(code, `handshake with ${url} failed: ${rawMessage}`, { cause: cause ?? error, retrySafe });
}
