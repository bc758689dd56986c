/**
 * The Node front doors: `listen` accepts connections and gives each a session with the server's services; `connect`
 * dials and resolves once the handshake is done. Both sides of a connection can serve and call. This is the one
 * module that ties transports to the core: the address's scheme picks one (in `bind` and `dialTransport`: node:net,
 * node:tls, or ws:// and wss:// in transport/websocket.ts); what an accepted transport becomes is acceptor.ts's, which
 * attach.ts shares. The core itself (wire, session, rpc) takes any Transport.
 */
import { Status } from '../wire/constants.js';
import { ProtocolError } from '../wire/errors.js';
import type { LogFn } from '../log.js';
import { parseAddress, type Address } from '../transport/address.js';
import { dial, listenOn, type DialOptions, type Listener, type ListenOnOptions } from '../transport/net.js';
import { checkTlsOptions, dialTls, listenTls, type TlsConnectOptions, type TlsListener, type TlsListenOptions } from '../transport/tls.js';
import { TlsFailure } from '../transport/tls-failures.js';
import type { Transport } from '../transport/transport.js';
import { dialWebSocket, listenWebSocket } from '../transport/websocket.js';
import { checkAuthOption } from '../rpc/auth.js';
import { rpcErrorOf } from '../rpc/connection-error.js';
import { RpcError } from '../rpc/rpc-error.js';
import { limitTimer } from '../timers.js';
import { checkMsOption, checkRpcSessionOptions, RpcSession, type RpcSessionOptions } from '../rpc/rpc-session.js';
import type { ListenerLimitOptions } from './listener-limits.js';
import { SessionAcceptor } from './acceptor.js';
import type { ServerStats } from './server-stats.js';

export interface ListenOptions extends RpcSessionOptions, ListenerLimitOptions {
  /** Called for every accepted session once its handshake is done. */
  onSession?: (session: RpcSession) => void;
  /** Where connections refused or closed for a protocol error are reported. Default: warnings to stderr. */
  log?: LogFn;
  /**
   * For a `tls://` or `wss://` address (required there, refused elsewhere): Node's TLS options, `key` and `cert` at least;
   * `requestCert: true` for mutual TLS. TLS 1.3 unless `minVersion` says otherwise; `rejectUnauthorized` cannot be false.
   */
  tls?: TlsListenOptions;
}

export interface Server {
  /** The bound address (with the real port when 0 was asked for). */
  readonly url: string;
  /** Sessions currently open, once their handshake is done (a dialer still being admitted is not one of them). */
  readonly sessions: ReadonlySet<RpcSession>;
  /** Stops accepting, closes every session gracefully (GOAWAY; calls in flight finish within graceMs). */
  close(options?: { graceMs?: number }): Promise<void>;
  /**
   * What the server's connections counted: all of them summed (closed ones included, so counts only grow) in
   * `totals`, and each open one with its peer in `sessions` (calls by method and status both ways, bytes, streams,
   * credit stalls, RTT). A plain object, computed when asked.
   */
  stats(): ServerStats;
  /**
   * tls:// only (a TypeError elsewhere): connections accepted from now on use this key, certificate and CAs (a
   * certificate rotated without a restart); open sessions are untouched. Throws a TypeError for options Node cannot use,
   * and the old ones stay.
   */
  setSecureContext(tls: TlsListenOptions): void;
}

export async function listen(url: string, options: ListenOptions = {}): Promise<Server> {
  const address = parseAddress(url); // a malformed address rejects with its TypeError before anything else
  checkTlsOptions(url, address, options.tls, 'listen');
  const acceptor = new SessionAcceptor(options, () => listener.url); // checks the session options and listener caps
  const limits = acceptor.limits;
  const bindOptions = {
    maxConnections: limits.maxConnections, onDrop: limits.dropped, handshakeTimeoutMs: options.handshakeTimeoutMs, tls: options.tls, log: acceptor.log,
  };
  const listener = await bind(url, address, bindOptions, acceptor.accept);
  return {
    url: listener.url,
    sessions: acceptor.sessions,
    close: (closeOptions) => acceptor.close(closeOptions, () => listener.close()),
    stats: () => acceptor.stats(),
    setSecureContext(tls) {
      if (!('setSecureContext' in listener)) throw new TypeError(`setSecureContext: ${listener.url} is not a tls:// listener`);
      listener.setSecureContext(tls);
    },
  };
}

/**
 * listenOn, with a failure to bind (address in use, no permission) as an UNAVAILABLE RpcError whose cause is Node's
 * error (`cause.code` is `EADDRINUSE`...). An address that is not one throws its TypeError as it is: that is a mistake
 * in the program, not a condition to handle.
 */
async function bind(
  url: string,
  address: Address,
  options: ListenOnOptions & { tls: TlsListenOptions | undefined; log: LogFn; handshakeTimeoutMs: number | undefined },
  onTransport: (transport: Transport) => void,
): Promise<Listener | TlsListener> {
  try {
    if (address.kind === 'tls') return await listenTls(url, onTransport, { ...options, tls: options.tls! });
    if (address.kind === 'ws' || address.kind === 'wss') return await listenWebSocket(url, onTransport, options);
    return await listenOn(url, onTransport, options);
  } catch (error) {
    if (error instanceof TypeError) throw error;
    throw new RpcError(Status.UNAVAILABLE, `cannot listen on ${url}: ${(error as Error).message}`, { cause: error });
  }
}

export interface ConnectOptions extends RpcSessionOptions, DialOptions {
  /**
   * For a `tls://` or `wss://` address (refused elsewhere): Node's TLS options (`ca`, and `cert` and `key` for mutual TLS). Omitted:
   * the system's CAs and no client certificate. TLS 1.3 unless `minVersion` says otherwise; `rejectUnauthorized`
   * cannot be false.
   */
  tls?: TlsConnectOptions;
}

/**
 * @internal Throws for a bad option of connect(), channel() or a Mesh: the session's options, `auth` (a dialer sends
 * a token: `auth.verify` alone is a TypeError), and connectTimeoutMs (above 0; Infinity: no bound of ours on the
 * dial, the handshake still bounded by handshakeTimeoutMs); with `url`, the tls options for that address as well.
 */
export function checkConnectOptions(options: ConnectOptions, url?: string): void {
  if (url !== undefined) checkTlsOptions(url, parseAddress(url), options.tls, 'connect');
  checkRpcSessionOptions(options);
  checkAuthOption(options.auth, true);
  checkMsOption('connectTimeoutMs', options.connectTimeoutMs, 'no bound of its own; handshakeTimeoutMs still bounds the handshake', true);
}

/** `connectTimeoutMs` when not given: the dial and the handshake together get this long. */
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Dials `url` (tcp://host:port, tls://host:port or unix:///path) and resolves with a ready session. `connectTimeoutMs`
 * bounds the dial and the handshake together. Failures are UNAVAILABLE, except those that retrying will not mend:
 * UNAUTHENTICATED (the server refused our `auth.token`, or a certificate was refused either way), PERMISSION_DENIED
 * (it refused who we are, or we refused whom we reached; a channel redials it as any failure), FAILED_PRECONDITION (no common protocol version, or a
 * TLS/plain mismatch). A malformed address or option rejects with a TypeError or RangeError before dialing.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<RpcSession> {
  // before dialing: a malformed address is the caller's mistake (a TypeError naming it and the schemes, not a
  // retry-safe UNAVAILABLE to retry for ever), and a bad option must not leave a socket behind
  const address = parseAddress(url);
  checkConnectOptions(options, url);
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const deadline = performance.now() + timeoutMs;
  let transport: Transport;
  try {
    transport = await dialTransport(url, address, { ...options, connectTimeoutMs: timeoutMs });
  } catch (error) {
    if (error instanceof TypeError) throw error;
    const status = error instanceof TlsFailure ? error.status : Status.UNAVAILABLE;
    throw new RpcError(status, (error as Error).message, { cause: error, retrySafe: true });
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
    // the peer spoke (or our own timer ran out), or we aborted: the session's words are right; else the transport may
    // know why the peer left (a TLS server that refused our certificate, a TLS port that a plain client reached)
    const explained = error instanceof ProtocolError || options.signal?.aborted === true ? undefined : transport.explainFailure?.();
    throw handshakeError(url, explained ?? error);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
  return session;
}

/** The scheme switch of a dial: tls:// over node:tls, ws:// and wss:// over ws, tcp:// and unix:// over node:net. */
function dialTransport(url: string, address: Address, options: ConnectOptions): Promise<Transport> {
  if (address.kind === 'tls') return dialTls(url, options);
  if (address.kind === 'ws' || address.kind === 'wss') return dialWebSocket(url, options);
  return dial(url, options);
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
