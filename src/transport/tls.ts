/**
 * Dialing and listening on `tls://host:port`: gridwire over TLS over TCP, with Node's `tls` options. TLS 1.3 unless
 * the options say otherwise; the peer's certificate is always verified (`rejectUnauthorized: false` is refused). Each
 * connection is a SocketTransport over its TLSSocket (a net.Socket that carries clear text), its peer's verified
 * certificate as `peer.identity`. Nothing here knows frames; nothing else changes on the wire.
 *
 * The acceptor wraps each accepted TCP socket in a server TLSSocket and hands it to the session at once, so the
 * session's handshakeTimeoutMs bounds TLS and HELLO together and the listener's maxPendingHandshakes counts the
 * connections still in their TLS handshake. (A tls.Server gives its socket out only once that handshake is done.) A
 * server TLSSocket made by hand gets none of what tls.Server does when the handshake completes, so the 'secure'
 * handler of `acceptedTransport` does it: it asks Node for its verdict on the client's certificate chain and closes
 * the connection when it is not good (without that, a hand-made server socket admits any certificate at all), then
 * hands the socket's errors back to it. It also needs the session id context tls.Server sets (`listenerContextOf`), or
 * a client resuming a TLS session is refused.
 *
 * Those two private calls (`_handle.verifyError()`, `_releaseControl()`) are kept on purpose for now, failing closed:
 * the public alternative (a tls.Server whose 'connection' hands the session a pending transport that queues writes,
 * 'secureConnection' opening it with the socket Node has verified, found by its TCP 4-tuple, and 'tlsClientError' for
 * the log line, as websocket.ts does for https) would drop them, but reworks the acceptor and its limits and was not
 * done in the time of the review fix; it is the way to go when a Node release changes either call.
 *
 * An accepted connection:
 *
 * | state       | event                                                          | next                                     |
 * |-------------|----------------------------------------------------------------|------------------------------------------|
 * | handshaking | (accept) TLSSocket made, the session attached, HELLO queued    | handshaking                              |
 * | handshaking | 'secure', no certificate asked, or Node's verdict on it good   | secure: `peer.identity` set, data flows  |
 * | handshaking | 'secure', the client's certificate fails verification          | closed: one warn line, nothing read      |
 * | handshaking | 'error' (not TLS, no common version, no client certificate...) | closed: one warn line                    |
 * | handshaking | the session ends or destroys it (handshakeTimeoutMs, eviction) | closed at once: the session's line only  |
 * | secure      | a TLS error (bad record, renegotiation)                        | closed: the session sees the loss        |
 */
import { createHash } from 'node:crypto';
import type { checkServerIdentity, ConnectionOptions, SecureContext, SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';
import { nodeTls } from './lazy-modules.js';
import type { LogFn } from '../log.js';
import { formatAddress, parseAddress, type Address } from './address.js';
import { identityOf } from './certificate-identity.js';
import { acceptSockets, dialSocket, type DialOptions, type Listener, type ListenOnOptions } from './net.js';
import { SocketTransport } from './socket.js';
import { acceptFailure, certificateProblem, describeCertificate, dialFailure, refusedAfterHandshake, TlsFailure } from './tls-failures.js';
import { Status } from '../wire/constants.js';
import type { PeerIdentity, PeerInfo, Transport } from './transport.js';

/**
 * Node's TLS options for a listener (`key`, `cert`, `ca`, `requestCert`, `minVersion`, `ciphers`, `ALPNProtocols`,
 * `SNICallback`...). `rejectUnauthorized` may only be true; `handshakeTimeout` is not taken (handshakeTimeoutMs bounds
 * TLS and HELLO together).
 */
export type TlsListenOptions = Omit<TlsOptions, 'rejectUnauthorized' | 'handshakeTimeout'> & { rejectUnauthorized?: true };

/**
 * Node's TLS options for a dial (`ca`, `cert`, `key`, `servername`, `minVersion`, `checkServerIdentity`...); the host
 * and port come from the address. `rejectUnauthorized` may only be true.
 */
export type TlsConnectOptions = Omit<ConnectionOptions, 'rejectUnauthorized' | 'host' | 'port' | 'path' | 'socket' | 'timeout'> & {
  rejectUnauthorized?: true;
};

export interface TlsListener extends Listener {
  /** New connections use these options' key, certificate and CAs from now on; open connections are untouched. */
  setSecureContext(options: TlsListenOptions): void;
}

export interface TlsListenOnOptions extends ListenOnOptions {
  tls: TlsListenOptions;
  /** Where the one line per failed TLS handshake goes. */
  log: LogFn;
}

export interface TlsDialOptions extends DialOptions {
  /** Omitted: the system's CAs, no client certificate. */
  tls?: TlsConnectOptions;
}

/**
 * @internal Throws a TypeError for `tls` options that do not fit `url` on this side: given for an address that is not
 * tls://, missing (or without a key and certificate) on a tls:// listener, or turning certificate checks off. The
 * messages name options, never their values.
 */
export function checkTlsOptions(url: string, address: Address, tls: unknown, side: 'listen' | 'connect'): void {
  if (address.kind !== 'tls' && address.kind !== 'wss') {
    if (tls !== undefined) throw new TypeError(`tls options were given for ${JSON.stringify(url)}, which is not a TLS address: use tls://host:port (or wss://host:port/path)`);
    return;
  }
  if (tls === undefined && side === 'connect') return; // the system's CAs, no client certificate
  if (tls === undefined) throw new TypeError(`listening on ${JSON.stringify(url)} needs tls options: tls.key and tls.cert (PEM), or tls.pfx`);
  checkTlsObject(tls, side === 'listen');
}

/** @internal Throws a TypeError for a TLS server's options (a mesh node's): a key and certificate, checks on. */
export function checkTlsServerOptions(tls: unknown): void {
  checkTlsObject(tls, true);
}

function checkTlsObject(tls: unknown, needsCertificate: boolean): void {
  if (typeof tls !== 'object' || tls === null) throw new TypeError('tls must be an object of Node.js tls options (key, cert, ca, ...)');
  const o = tls as Record<string, unknown>;
  if (o['rejectUnauthorized'] !== undefined && o['rejectUnauthorized'] !== true) {
    throw new TypeError("tls.rejectUnauthorized: false is refused: gridwire always verifies the peer's certificate (to trust a private CA, give it in tls.ca)");
  }
  // without tls.ca, Node trusts its bundled public roots (and NODE_EXTRA_CA_CERTS): any certificate a public CA signs
  // would pass as a client's, so a listener asking for client certificates must say whose it trusts
  if (needsCertificate && o['requestCert'] === true && o['ca'] === undefined) {
    throw new TypeError('tls.requestCert needs tls.ca: the CAs client certificates must chain to (without it, every publicly trusted CA would be one)');
  }
  // a made context would bypass what gridwire builds from the options: the TLS 1.3 default (dial), everything (listen)
  if (o['secureContext'] !== undefined) throw new TypeError('tls.secureContext is not taken: give tls.key, tls.cert and tls.ca (gridwire makes the context, TLS 1.3 by default)');
  const hasPair = o['key'] !== undefined && o['cert'] !== undefined;
  if (needsCertificate && !hasPair && o['pfx'] === undefined) {
    const missing = ['key', 'cert'].filter((name) => o[name] === undefined).map((name) => `tls.${name}`).join(' and ');
    throw new TypeError(`a TLS listener needs its certificate: ${missing} missing (PEM; or give tls.pfx)`);
  }
  if (!needsCertificate && (o['key'] === undefined) !== (o['cert'] === undefined)) {
    throw new TypeError(`a client certificate needs both tls.cert and tls.key: tls.${o['key'] === undefined ? 'key' : 'cert'} is missing`);
  }
  secureContextOf(tls as SecureContextOptions); // a key or certificate Node cannot read: here, not at the first connection
}

/**
 * TLS 1.3 only, unless the options choose versions themselves (minVersion, maxVersion or secureProtocol). Also what
 * wss:// (transport/websocket.ts) gives node:https and the ws client, so both TLS transports share one policy.
 */
export function withTls13Default<T extends SecureContextOptions>(options: T): T {
  if (options.minVersion !== undefined || options.maxVersion !== undefined || options.secureProtocol !== undefined) return options;
  return { ...options, minVersion: 'TLSv1.3' };
}

/** The secure context of these options; a TypeError, naming no secret, when Node cannot use them. */
function secureContextOf(options: SecureContextOptions): SecureContext {
  try {
    return nodeTls().createSecureContext(withTls13Default(options));
  } catch (error) {
    throw new TypeError(`the tls options cannot be used (key, cert, ca, ...): ${(error as Error).message}`, { cause: error });
  }
}

/**
 * A SocketTransport over a TLSSocket: it remembers when the session closed it, ends a connection whose TLS handshake
 * is not done by destroying it, and closes on a late TLS error.
 */
class TlsTransport extends SocketTransport {
  /** The session has ended or destroyed the connection: a TLS error from then on is its doing, not news. */
  closing = false;

  constructor(
    private readonly tlsSocket: TLSSocket,
    peer: PeerInfo,
    /** The TLS handshake is done (a dialed socket is handed over only then; an accepted one is at once). */
    public secured: boolean,
    silentCloseMeans?: () => Error,
  ) {
    super(tlsSocket, peer, silentCloseMeans);
    tlsSocket.disableRenegotiation(); // TLS 1.2 only (1.3 has none): a peer may not restart the handshake mid-connection
    // Node reports a TLS error after the handshake (a bad record, a renegotiation attempt) but leaves the socket open
    tlsSocket.on('error', () => tlsSocket.destroy());
  }

  override end(): void {
    this.closing = true;
    // what the session wrote (its HELLO, a GOAWAY) waits for a handshake that will not come now, and a TLSSocket does
    // not finish ending before its writes are done: it would linger until the session's linger timer destroyed it
    if (!this.secured) this.tlsSocket.destroy();
    else super.end();
  }

  override destroy(error?: Error): void {
    this.closing = true;
    super.destroy(error);
  }
}

// ---------------------------------------------------------------- dial

/**
 * Dials `tls://host:port`: TCP, then TLS; resolves once the TLS handshake is done ('secureConnect': the server's
 * certificate verified, for the host dialed or as `tls.checkServerIdentity` says). A failure rejects with a
 * TlsFailure (UNAUTHENTICATED for a certificate refused either way, FAILED_PRECONDITION for a server that does not
 * speak TLS or shares no TLS version) or an Error (the rest: refused, reset, timed out).
 */
export function dialTls(url: string, options: TlsDialOptions = {}): Promise<Transport> {
  const address = parseAddress(url);
  if (address.kind !== 'tls') throw new TypeError(`dialTls takes a tls:// address, got ${JSON.stringify(url)}`);
  const tls = withTls13Default(options.tls ?? {});
  const presentsCertificate = tls.cert !== undefined || tls.pfx !== undefined;
  let socket: TLSSocket;
  try {
    socket = nodeTls().connect({ ...tls, host: address.host, port: address.port, rejectUnauthorized: true, checkServerIdentity: serverIdentityCheck(tls.checkServerIdentity) });
  } catch (error) {
    return Promise.reject(new TypeError(`the tls options cannot be used (key, cert, ca, ...): ${(error as Error).message}`, { cause: error }));
  }
  return dialSocket(url, options, {
    socket,
    readyEvent: 'secureConnect',
    ready: (socket) => {
      let lateError: Error | undefined;
      socket.on('error', (error) => void (lateError ??= error));
      const peer: PeerInfo = {
        transport: 'tls',
        address: formatAddress({ kind: 'tls', host: socket.remoteAddress ?? address.host, port: socket.remotePort ?? address.port }),
        identity: identityOf(socket.getPeerCertificate()),
      };
      return new TlsTransport(socket, peer, true, () => refusedAfterHandshake(presentsCertificate, lateError));
    },
    failure: (error) => dialFailure(url, error),
  });
}

/**
 * Node's host name check, or the caller's own (`tls.checkServerIdentity`) with its refusal as an UNAUTHENTICATED
 * TlsFailure: a server certificate refused by a check of ours is a certificate refused, whatever the check.
 */
function serverIdentityCheck(custom: TlsConnectOptions['checkServerIdentity']): typeof checkServerIdentity {
  if (custom === undefined) return nodeTls().checkServerIdentity;
  return (host, cert) => {
    const refusal = custom(host, cert);
    if (refusal === undefined || refusal instanceof TlsFailure) return refusal;
    return new TlsFailure(Status.UNAUTHENTICATED, `the server's certificate was refused by tls.checkServerIdentity: ${refusal.message}`, { cause: refusal });
  };
}

// ---------------------------------------------------------------- listen

/**
 * Listens on `tls://host:port`. Each accepted connection becomes a transport at once (its TLS handshake still to
 * come: see the table above); `setSecureContext` swaps the key, certificate and CAs for the connections that follow.
 * `requestCert: true` asks every client for a certificate and refuses one without a valid certificate (mutual TLS).
 */
export async function listenTls(url: string, onTransport: (transport: Transport) => void, options: TlsListenOnOptions): Promise<TlsListener> {
  const { tls, log } = options;
  let context = listenerContextOf(url, tls);
  const requestCert = tls.requestCert === true;
  const socketOptions = { isServer: true, requestCert, rejectUnauthorized: true, ALPNProtocols: tls.ALPNProtocols, SNICallback: tls.SNICallback };
  const listener = await acceptSockets(
    url,
    (raw) => {
      const address = formatAddress({ kind: 'tls', host: raw.remoteAddress ?? '?', port: raw.remotePort ?? 0 });
      let socket: TLSSocket;
      try {
        socket = new (nodeTls().TLSSocket)(raw, { ...socketOptions, secureContext: context });
      } catch (error) {
        raw.destroy();
        log('warn', `could not start TLS with ${address}: ${(error as Error).message}`);
        return;
      }
      onTransport(acceptedTransport(socket, address, requestCert, log));
    },
    options,
  );
  return {
    url: listener.url,
    close: () => listener.close(),
    setSecureContext(next) {
      checkTlsObject({ ...next, requestCert }, true); // requestCert stays as first given: a listener asking for client certificates needs tls.ca in every context
      context = listenerContextOf(url, next);
    },
  };
}

/**
 * A listener's secure context, with a session id context as tls.Server gives its own: without one, OpenSSL refuses a
 * client that resumes a session (TLS 1.2 session id or TLS 1.3 ticket) on a context that verifies peers, with fatal
 * alert 80 "session id context uninitialized", so clients that cache sessions (Go, Java, curl) could not reconnect.
 * The id is a hash of the listener's address and its certificate and CA options: sessions resume only where they were
 * made. (Each context also has its own ticket keys and session cache, so setSecureContext ends resumption of the older
 * sessions: a client certificate verified against an old CA list is verified again.) `context.setSessionIdContext` is
 * what tls.Server calls; a Node without it leaves the context as it was (resumption refused, nothing else changes).
 */
function listenerContextOf(url: string, options: SecureContextOptions): SecureContext {
  const context = secureContextOf(options);
  const native = (context as { context?: { setSessionIdContext?: (id: string) => void } }).context;
  if (typeof native?.setSessionIdContext !== 'function') return context;
  const hash = createHash('sha256').update(url);
  for (const option of [options.cert, options.pfx, options.ca]) {
    for (const item of [option ?? []].flat()) {
      const bytes = typeof item === 'object' && 'buf' in item ? item.buf : item;
      hash.update('\0').update(bytes);
    }
  }
  native.setSessionIdContext(hash.digest('hex').slice(0, SESSION_ID_CONTEXT_CHARS));
  return context;
}

/** OpenSSL takes at most 32 bytes of session id context. */
const SESSION_ID_CONTEXT_CHARS = 32;

/** An accepted TLSSocket as the session's transport, from accept on (the table in the header). */
function acceptedTransport(socket: TLSSocket, address: string, requestCert: boolean, log: LogFn): TlsTransport {
  const peer: { transport: string; address: string; identity?: PeerIdentity } = { transport: 'tls', address };
  const transport = new TlsTransport(socket, peer, false);
  const onHandshakeError = (error: Error): void => {
    if (!transport.closing) log('warn', `TLS handshake with ${address} failed: ${acceptFailure(error)}`);
  };
  socket.once('error', onHandshakeError);
  socket.once('secure', () => {
    socket.off('error', onHandshakeError);
    const refusal = requestCert ? clientCertificateRefusal(socket) : undefined;
    if (refusal !== undefined) {
      log('warn', `refused a TLS connection from ${address}: ${refusal}`);
      socket.destroy(); // before a byte of the client's is read: no HELLO, no session, no handler
      return;
    }
    releaseControl(socket);
    // read by the session when the peer's HELLO comes, which TLS delivers only after this
    peer.identity = identityOf(socket.getPeerCertificate());
    transport.secured = true;
  });
  return transport;
}

/** What Node's verdict is called when this Node gives none: no certificate passes then. */
const NO_VERDICT = 'NO_VERDICT';

/**
 * Node's verdict on the client's certificate chain: undefined when it is good, else the OpenSSL code
 * (`CERT_HAS_EXPIRED`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`...). tls.Server reads it from the socket's handle in its
 * own 'secure' handler; a socket made by hand must ask the same way. If a Node version ever stops offering it, every
 * client certificate is refused (NO_VERDICT), never admitted unchecked.
 */
function verifyErrorOf(socket: TLSSocket): string | undefined {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => unknown } })._handle;
  if (typeof handle?.verifyError !== 'function') return NO_VERDICT;
  let verdict: unknown;
  try {
    verdict = handle.verifyError();
  } catch {
    return NO_VERDICT;
  }
  if (verdict === null || verdict === undefined) return undefined;
  if (typeof verdict === 'string') return verdict;
  return (verdict as { code?: string }).code ?? NO_VERDICT;
}

/** Why the client's certificate is refused, for the log line, or undefined when it is good. */
function clientCertificateRefusal(socket: TLSSocket): string | undefined {
  const code = verifyErrorOf(socket);
  if (code === undefined) return undefined;
  const names = describeCertificate(socket);
  if (code === NO_VERDICT) return `this Node.js gives no verdict on client certificates, so none is accepted (it sent: ${names})`;
  return `its certificate (${names}) ${certificateProblem(code) ?? 'failed verification'} (${code})`;
}

/**
 * Hands the socket's errors back to it, as tls.Server does once a handshake is done: until then Node keeps a server
 * socket's TLS errors to itself, and a connection whose TLS failed later would linger until keepalive noticed.
 */
function releaseControl(socket: TLSSocket): void {
  (socket as unknown as { _releaseControl?: () => void })._releaseControl?.();
}
