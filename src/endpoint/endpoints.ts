/**
 * The Node front doors: `listen` accepts connections and gives each a session with the server's services; `connect`
 * dials and resolves once the handshake is done. Both sides of a connection can serve and call. This is the one
 * module that ties node:net transports to the core; the core itself (wire, session, rpc) takes any Transport. The
 * address's scheme picks the transport (ws:// and wss://: transport/websocket.ts); what an accepted transport becomes
 * is acceptor.ts's, which attach.ts shares.
 */
import { Status } from '../wire/constants.js';
import { type LogFn } from '../log.js';
import { parseAddress } from '../transport/address.js';
import { dial, listenOn, type DialOptions, type Listener } from '../transport/net.js';
import type { Transport } from '../transport/transport.js';
import {
  dialWebSocket, isWebSocketUrl, listenWebSocket, type WebSocketDialOptions, type WebSocketListenOnOptions,
} from '../transport/websocket.js';
import { rpcErrorOf } from '../rpc/connection-error.js';
import { RpcError } from '../rpc/rpc-error.js';
import { limitTimer } from '../timers.js';
import { checkMsOption, checkRpcSessionOptions, RpcSession, type RpcSessionOptions } from '../rpc/rpc-session.js';
import { type ListenerLimitOptions } from './listener-limits.js';
import { SessionAcceptor } from './acceptor.js';

export interface ListenOptions extends RpcSessionOptions, ListenerLimitOptions, Pick<WebSocketListenOnOptions, 'tls'> {
  /** Called for every accepted session once its handshake is done. */
  onSession?: (session: RpcSession) => void;
  /** Where connections refused or closed for a protocol error are reported. Default: warnings to stderr. */
  log?: LogFn;
}

export interface Server {
  /** The bound address (with the real port when 0 was asked for). */
  readonly url: string;
  /** Sessions currently open. */
  readonly sessions: ReadonlySet<RpcSession>;
  /** Stops accepting, closes every session gracefully (GOAWAY; calls in flight finish within graceMs). */
  close(options?: { graceMs?: number }): Promise<void>;
}

export async function listen(url: string, options: ListenOptions = {}): Promise<Server> {
  parseAddress(url); // a malformed address rejects with its TypeError before anything else
  const acceptor = new SessionAcceptor(options, () => listener.url);
  const limits = acceptor.limits;
  const bindOptions = { maxConnections: limits.maxConnections, onDrop: limits.dropped, handshakeTimeoutMs: options.handshakeTimeoutMs, tls: options.tls };
  const listener: Listener = await bind(url, bindOptions, acceptor.accept);
  return {
    url: listener.url,
    sessions: acceptor.sessions,
    close: (closeOptions) => acceptor.close(closeOptions, () => listener.close()),
  };
}

/**
 * listenOn, with a failure to bind (address in use, no permission) as an UNAVAILABLE RpcError whose cause is Node's
 * error (`cause.code` is `EADDRINUSE`...). An address that is not one throws its TypeError as it is: that is a mistake
 * in the program, not a condition to handle.
 */
async function bind(url: string, options: WebSocketListenOnOptions, onTransport: (transport: Transport) => void): Promise<Listener> {
  try {
    return await (isWebSocketUrl(url) ? listenWebSocket(url, onTransport, options) : listenOn(url, onTransport, options));
  } catch (error) {
    if (error instanceof TypeError) throw error;
    throw new RpcError(Status.UNAVAILABLE, `cannot listen on ${url}: ${(error as Error).message}`, { cause: error });
  }
}

export interface ConnectOptions extends RpcSessionOptions, DialOptions, Pick<WebSocketDialOptions, 'tls'> {}

/**
 * @internal Throws for a bad option of connect(), channel() or a Mesh: the session's options, and connectTimeoutMs
 * (above 0; Infinity: no bound of ours on the dial, the handshake still bounded by handshakeTimeoutMs).
 */
export function checkConnectOptions(options: ConnectOptions): void {
  checkRpcSessionOptions(options);
  checkMsOption('connectTimeoutMs', options.connectTimeoutMs, 'no bound of its own; handshakeTimeoutMs still bounds the handshake', true);
}

/** `connectTimeoutMs` when not given: the dial and the handshake together get this long. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Dials `url` (tcp://host:port or unix:///path) and resolves with a ready session. `connectTimeoutMs` bounds the dial
 * and the handshake together. Failures are UNAVAILABLE (FAILED_PRECONDITION for a protocol version mismatch); a
 * malformed address or option rejects with a TypeError or RangeError before dialing.
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
    transport = await (isWebSocketUrl(url) ? dialWebSocket : dial)(url, { ...options, connectTimeoutMs: timeoutMs });
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
 * A version mismatch will not heal by retrying: FAILED_PRECONDITION (upgrade one side first). Anything else that ends
 * a handshake (a timeout, a peer that hung up) is UNAVAILABLE.
 */
export function handshakeError(url: string, error: unknown): RpcError {
  const { code, rawMessage, cause } = rpcErrorOf(error); // the cause: the ProtocolError or SessionError underneath
  return new RpcError(code, `handshake with ${url} failed: ${rawMessage}`, { cause: cause ?? error });
}
