/**
 * Dialing, listening and attaching on `ws://host:port/path` and `wss://host:port/path` with `ws` (docs/PROTOCOL.md §14).
 * Each dialed or accepted WebSocket becomes a WebSocketTransport; nothing here knows about frames.
 *
 * - **dial**: a ws client (compression off, maxPayload the binding's bound, the zero masking key, no redirects), and
 *   its upgrade bounded by connectTimeoutMs. `tls` (Node's tls.connect options) applies to wss://, and a wss:// dial
 *   that fails is classified as a tls:// one is (tls-failures.ts: UNAUTHENTICATED for a certificate refused either
 *   way, FAILED_PRECONDITION for a plain server or no common TLS version).
 * - **listen**: our own node:http or node:https server (`tls`: Node's tls options; a client certificate, when asked
 *   for, checked by us once TLS is up, and each failed TLS handshake or refused certificate logged once, in tls://'s
 *   words) that upgrades requests for the address's path; any other request gets 404 (another path) or 426 (a plain request to ours), and the connection
 *   closes. Each TCP connection is handed over as it is accepted (the session's handshake deadline and the listener's
 *   pending-handshake cap then cover TLS, the upgrade and the HELLO), and the server bounds what a request can make
 *   it hold: UPGRADE_MAX_HEADERS headers, UPGRADE_MAX_HEADER_BYTES bytes of them, and the headers and request within
 *   handshakeTimeoutMs.
 * - **attach**: upgrades for one path on the application's own http or https server, which keeps everything else. An
 *   upgrade to another path is left to the application's own 'upgrade' listeners; when there are none it is answered
 *   404, since nothing else would ever answer it. A connection is handed over when its upgrade request arrives (the
 *   application's server owned it before). On an https server, mutual TLS is the application's verdict (its
 *   requestCert, ca, rejectUnauthorized); a client certificate that TLS did not verify is refused at the upgrade
 *   (403, one log line), never taken as `peer.identity`.
 * - Every upgrade request with UPGRADE_MAX_HEADERS headers or more (Node keeps that many and drops the rest) is refused
 *   with 431: the class of CVE-2024-37890, where an upgrade with more headers than Node keeps crashed ws.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerOptions as HttpServerOptions } from 'node:http';
import type { Duplex } from 'node:stream';
import { isIP, type Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket, TlsOptions } from 'node:tls';
import type { ClientOptions, WebSocketServer } from 'ws';
import { nodeHttps, nodeTls, wsModule } from './lazy-modules.js';
import { formatAddress, parseAddress, type WebSocketAddress } from './address.js';
import type { DialOptions, Listener, ListenOnOptions } from './net.js';
import { identityOf } from './certificate-identity.js';
import { withTls13Default } from './tls.js';
import { acceptFailure, certificateProblem, describeCertificate, dialFailure, refusedAfterHandshake, TlsFailure } from './tls-failures.js';
import { stderrLog, type LogFn } from '../log.js';
import type { PeerIdentity, PeerInfo, Transport } from './transport.js';
import { WEBSOCKET_MAX_BUFFERED_CHUNKS, WEBSOCKET_MAX_FRAGMENTS, WebSocketTransport, zeroMask } from './websocket-transport.js';
import { DEFAULT_LIMITS, Status, WEBSOCKET_MAX_MESSAGE_BYTES } from '../wire/constants.js';
import { limitTimer } from '../timers.js';

/**
 * Headers an upgrade request may have; one with this many or more is refused (431). A WebSocket upgrade needs about
 * ten; proxies add a few. Node's own default keeps 2 000 and drops the rest silently.
 */
export const UPGRADE_MAX_HEADERS = 64;
/** Bytes of request line and headers our own server reads (Node's default is 16 KiB); beyond, 431. */
export const UPGRADE_MAX_HEADER_BYTES = 8 * 1024;
/** After our close frame, how long the peer has to answer with its own before ws destroys the socket. */
const CLOSE_TIMEOUT_MS = 2_000;
/** How often our server checks its requests against headersTimeout and requestTimeout (Node's default: 30 s). */
const TIMEOUT_CHECK_MS = 1_000;

export interface WebSocketDialOptions extends DialOptions {
  /** wss:// only: Node's tls.connect options (`ca`, `cert`, `key`, `servername`, `minVersion`...). */
  tls?: ConnectionOptions;
}

export interface WebSocketListenOnOptions extends ListenOnOptions {
  /** Bounds the request's headers and the whole request on our own server; 0 leaves Node's defaults. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** wss:// only, and required there: Node's tls options for https.createServer (`key`, `cert`, `ca`, `requestCert`...). */
  tls?: TlsOptions;
  /** Where the one line per refused connection goes (a failed TLS handshake, an unverified certificate). */
  log?: LogFn;
}

export function isWebSocketUrl(url: string): boolean {
  return url.startsWith('ws://') || url.startsWith('wss://');
}

// ---------------------------------------------------------------- dial

export function dialWebSocket(url: string, options: WebSocketDialOptions = {}): Promise<Transport> {
  const address = parseAddress(url) as WebSocketAddress;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new Error(`dial ${url}: aborted`));
      return;
    }
    // wss://: whether TLS was up when the dial failed, and what the TLS socket reported, say why it failed
    let secured = false;
    let tlsError: Error | undefined;
    const createConnection = (connection: ConnectionOptions): TLSSocket => {
      // as ws's own: no path; the host as the server name unless it is an IP address or one was given
      if (!connection.servername && connection.servername !== '') connection.servername = isIP(connection.host ?? '') ? '' : connection.host;
      const socket = nodeTls().connect({ ...connection, path: undefined } as ConnectionOptions);
      socket.once('secureConnect', () => (secured = true));
      socket.on('error', (error) => void (tlsError ??= error));
      return socket;
    };
    const clientOptions = {
      // wss:// takes tls://'s policy: TLS 1.3 unless the options choose, certificates always checked
      ...(address.kind === 'wss' ? { ...withTls13Default(options.tls ?? {}), rejectUnauthorized: true, createConnection } : undefined),
      perMessageDeflate: false,
      maxPayload: WEBSOCKET_MAX_MESSAGE_BYTES,
      maxFragments: WEBSOCKET_MAX_FRAGMENTS,
      maxBufferedChunks: WEBSOCKET_MAX_BUFFERED_CHUNKS,
      generateMask: zeroMask,
      followRedirects: false,
      closeTimeout: CLOSE_TIMEOUT_MS,
    } as ClientOptions;
    const ws = new (wsModule().WebSocket)(url, clientOptions);
    let socket: Duplex | undefined;
    const timer = limitTimer(timeoutMs, () => fail(new Error(`dial ${url}: no WebSocket within connectTimeoutMs (${timeoutMs} ms)`)));
    const onAbort = (): void => fail(new Error(`dial ${url}: aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    function cleanup(): void {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      ws.off('upgrade', onUpgrade);
      ws.off('open', onOpen);
      ws.off('error', onError);
    }
    function fail(error: Error): void {
      cleanup();
      ws.on('error', () => undefined); // terminate() of a connecting WebSocket reports an error of its own
      ws.terminate();
      reject(error);
    }
    function onUpgrade(response: IncomingMessage): void {
      socket = response.socket;
    }
    function onError(error: Error): void {
      if (address.kind === 'ws') return fail(plainDialFailure(url, error));
      const presented = options.tls?.cert !== undefined || options.tls?.pfx !== undefined;
      fail(secureDialFailure(url, error, secured, presented, tlsError));
    }
    function onOpen(): void {
      cleanup();
      const transport = new WebSocketTransport(peerOf(socket as Socket, address.kind, address.path));
      transport.open(ws, socket!);
      resolve(transport);
    }
    ws.on('upgrade', onUpgrade);
    ws.on('open', onOpen);
    ws.on('error', onError);
  });
}

/** ws answers an upgrade that got no response at all with this. */
function isHangUp(error: Error): boolean {
  return (error as NodeJS.ErrnoException).code === 'ECONNRESET' || error.message === 'socket hang up';
}

/**
 * A failed ws:// dial (UNAVAILABLE): a server that hangs up without answering the upgrade may be a wss:// port (an
 * https server closes a connection whose first bytes are not TLS), or one at its connection cap; the words say both.
 */
function plainDialFailure(url: string, error: Error): Error {
  if (isHangUp(error)) {
    return new Error(`dial ${url}: the server closed the connection without answering the WebSocket upgrade (${error.message}): if it is a wss:// port, use wss://`, { cause: error });
  }
  return new Error(`dial ${url}: ${error.message}`, { cause: error });
}

/**
 * A failed wss:// dial, as tls:// classifies its own (tls-failures.ts): a certificate refused either way
 * UNAUTHENTICATED, a plain server or no common TLS version FAILED_PRECONDITION, the rest UNAVAILABLE. `secured`: the
 * TLS handshake was done when it failed, so a hang-up then is the server refusing our certificate (TLS 1.3 lets the
 * client finish before the server has checked it); `tlsError`, what the TLS socket reported (the server's alert).
 */
function secureDialFailure(url: string, error: Error, secured: boolean, presented: boolean, tlsError: Error | undefined): Error {
  if (error.message === 'Unexpected server response: 403') {
    return new TlsFailure(Status.UNAUTHENTICATED, `dial ${url}: the server refused the WebSocket upgrade (403): an attach()ed https server's TLS let our client certificate through unverified, and gridwire refused it; its log says why`, { cause: error });
  }
  if (secured && isHangUp(error)) return dialFailure(url, refusedAfterHandshake(presented, tlsError ?? error));
  return dialFailure(url, error);
}

function peerOf(socket: Socket, kind: 'ws' | 'wss', path = ''): PeerInfo {
  const peer: PeerInfo = { transport: kind, address: formatAddress({ kind, host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0, path }) };
  if (socket instanceof nodeTls().TLSSocket) setIdentity(peer, socket);
  return peer;
}

/**
 * wss://: the peer's certificate as `peer.identity`, as over tls://, when TLS verified it (`socket.authorized`), and
 * never otherwise. Set once the TLS handshake is done (on the dialer as it opens, on the acceptor at the upgrade),
 * before the HELLO that copies the peer into the session.
 */
function setIdentity(peer: PeerInfo, socket: TLSSocket): void {
  if (socket.authorized) (peer as { identity?: PeerIdentity }).identity = identityOf(socket.getPeerCertificate());
}

/** Why a client's certificate is not accepted (TLS did not verify it, or there is none), in tls.ts's words. */
function clientCertificateRefusal(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  if (cert === null || cert.raw === undefined) return 'the peer presented no client certificate (this listener requires one: tls.requestCert)';
  const error = socket.authorizationError as unknown;
  const code = typeof error === 'string' ? error : ((error as { code?: string } | undefined)?.code ?? 'UNVERIFIED');
  return `its certificate (${describeCertificate(socket)}) ${certificateProblem(code) ?? 'failed verification'} (${code})`;
}

/**
 * Why a wss:// upgrade is refused for its client certificate, or undefined: a certificate was presented and TLS did
 * not verify it. Our own https server never lets one through (rejectUnauthorized), but an application's server given
 * to attach() may (`requestCert: true, rejectUnauthorized: false`, to answer bad certificates itself): its mTLS
 * verdict is the application's, and gridwire refuses a connection whose certificate that verdict did not accept.
 */
function unverifiedCertificate(socket: TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (cert === null || cert.raw === undefined) return undefined; // none presented: no identity, nothing claimed
  const code = typeof socket.authorizationError === 'string' ? socket.authorizationError : ((socket.authorizationError as { code?: string } | undefined)?.code ?? 'UNVERIFIED');
  return `its client certificate (${describeCertificate(socket)}) ${certificateProblem(code) ?? 'failed verification'} (${code}); the https server let it through, gridwire does not`;
}

// ---------------------------------------------------------------- upgrades (listen and attach)

/** Turns upgrade requests for one path into open WebSocketTransports, or refuses them. */
class Upgrades {
  private readonly server = new (wsModule().WebSocketServer)({
    noServer: true,
    perMessageDeflate: false, // an offer of permessage-deflate is never accepted
    maxPayload: WEBSOCKET_MAX_MESSAGE_BYTES,
    maxFragments: WEBSOCKET_MAX_FRAGMENTS,
    maxBufferedChunks: WEBSOCKET_MAX_BUFFERED_CHUNKS,
    clientTracking: false,
    closeTimeout: CLOSE_TIMEOUT_MS,
  } as ConstructorParameters<typeof WebSocketServer>[0]);

  constructor(
    readonly path: string,
    private readonly log: LogFn,
  ) {}

  /** Whether `request` is for our path: the exact path, as written, whatever its query. */
  isOurs(request: IncomingMessage): boolean {
    const url = request.url ?? '';
    const query = url.indexOf('?');
    return (query === -1 ? url : url.slice(0, query)) === this.path;
  }

  /** Upgrades `socket` (the request is ours) and opens `transport` on it, or refuses it with an HTTP error. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer, transport: WebSocketTransport): void {
    if (request.rawHeaders.length / 2 >= UPGRADE_MAX_HEADERS) return refuse(socket, 431);
    if (socket instanceof nodeTls().TLSSocket) {
      const refusal = unverifiedCertificate(socket);
      if (refusal !== undefined) {
        this.log('warn', `refused the WebSocket upgrade from ${transport.peer.address}: ${refusal}`);
        return refuse(socket, 403);
      }
      setIdentity(transport.peer, socket);
    }
    this.server.handleUpgrade(request, socket, head, (ws) => transport.open(ws, socket));
  }
}

/** Answers an upgrade request with an HTTP error and closes the connection. */
function refuse(socket: Duplex, status: 403 | 404 | 426 | 431 | 503): void {
  const reason = { 403: 'Forbidden', 404: 'Not Found', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large', 503: 'Service Unavailable' }[status];
  socket.once('error', () => undefined);
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

// ---------------------------------------------------------------- listen

export async function listenWebSocket(
  url: string,
  onTransport: (transport: Transport) => void,
  options: WebSocketListenOnOptions = {},
): Promise<Listener> {
  const address = parseAddress(url) as WebSocketAddress;
  const secure = address.kind === 'wss';
  if (secure && options.tls === undefined) throw new TypeError(`listen ${url}: wss:// needs the tls option (at least a key and certificate)`);
  if (!secure && options.tls !== undefined) throw new TypeError(`listen ${url}: the tls option is for wss:// addresses; use wss:// or leave tls out`);
  const timeoutMs = options.handshakeTimeoutMs ?? DEFAULT_LIMITS.handshakeTimeoutMs;
  const httpOptions: HttpServerOptions = {
    maxHeaderSize: UPGRADE_MAX_HEADER_BYTES,
    noDelay: true,
    connectionsCheckingInterval: TIMEOUT_CHECK_MS,
    // Node requires headersTimeout <= requestTimeout; 0 (handshakeTimeoutMs off) keeps Node's 60 s and 300 s
    ...(timeoutMs > 0 ? { headersTimeout: timeoutMs, requestTimeout: timeoutMs } : {}),
  };
  // wss:// takes tls://'s policy: TLS 1.3 unless the options choose; a client certificate, when asked for, is checked,
  // by us as tls.ts does (Node's own rejectUnauthorized closes the connection without a word to say why)
  const tlsOptions = secure ? { ...withTls13Default(options.tls!), rejectUnauthorized: false } : undefined;
  const requestCert = secure && options.tls!.requestCert === true;
  const server: HttpServer = tlsOptions ? nodeHttps().createServer({ ...tlsOptions, ...httpOptions }) : createHttpServer(httpOptions);
  server.maxHeadersCount = UPGRADE_MAX_HEADERS;
  const log = options.log ?? stderrLog;
  const upgrades = new Upgrades(address.path, log);
  // the transport of each connection still to upgrade, by its TCP 4-tuple: with https the upgrade comes on the
  // TLSSocket, another object than the socket accepted, with the same addresses
  const upgrading = new Map<string, WebSocketTransport>();
  server.on('connection', (socket: Socket) => {
    // the connection may fail before the session attaches; swallow so it cannot become an uncaught error
    socket.on('error', () => undefined);
    const key = connectionKey(socket);
    const transport = new WebSocketTransport(peerOf(socket, address.kind), socket);
    upgrading.set(key, transport);
    socket.once('close', () => upgrading.delete(key));
    onTransport(transport);
  });
  // wss://: one line per failed TLS handshake or refused client certificate, in tls://'s words (tls.ts), unless the
  // session gave up on the connection first
  server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
    const transport = upgrading.get(connectionKey(socket));
    if (transport !== undefined && !transport.givenUp) log('warn', `TLS handshake with ${transport.peer.address} failed: ${acceptFailure(error)}`);
  });
  // mutual TLS: the client's certificate checked once TLS is up, before a byte of its request is read (the HTTP
  // parser reads on a later turn); a refusal closes the connection
  if (requestCert) {
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.authorized) return;

      const transport = upgrading.get(connectionKey(socket));
      const refusal = clientCertificateRefusal(socket); // before destroy(), which forgets the certificate
      socket.destroy();
      if (transport !== undefined && !transport.givenUp) log('warn', `refused a TLS connection from ${transport.peer.address}: ${refusal}`);
    });
  }
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const key = connectionKey(socket as Socket);
    const transport = upgrading.get(key);
    upgrading.delete(key);
    if (transport === undefined) return socket.destroy(); // its session gave up on it already
    if (!upgrades.isOurs(request)) return refuse(socket, 404);
    upgrades.upgrade(request, socket, head, transport);
  });
  // a request that is no upgrade: 426 on our path, 404 elsewhere, and the connection closes (its session with it)
  server.on('request', (request: IncomingMessage, response) => {
    response.writeHead(upgrades.isOurs(request) ? 426 : 404, { Connection: 'close', 'Content-Length': 0, ...(upgrades.isOurs(request) ? { Upgrade: 'websocket' } : {}) });
    response.end();
  });
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  if (options.onDrop !== undefined) server.on('drop', options.onDrop);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const bound = server.address();
  const port = bound !== null && typeof bound !== 'string' ? bound.port : address.port;
  return {
    url: formatAddress({ ...address, port }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The TCP 4-tuple of a connection: the same on the socket accepted and on the TLSSocket over it. */
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`;
}

// ---------------------------------------------------------------- attach

export interface AttachedUpgrades {
  /** `ws://host:port/path` (wss:// for an https server), or '' while the server is not listening. */
  readonly url: string;
  /** Stops taking upgrades (removes our 'upgrade' listener); the application's server is not touched. */
  close(): void;
}

/**
 * Takes the upgrades for `path` on the application's `server`. `admit` is asked before each one (false: refused with
 * 503); each admitted one is handed over as a transport at once, then upgraded.
 */
export function attachWebSocket(
  server: HttpServer,
  path: string,
  onTransport: (transport: Transport) => void,
  admit: () => boolean,
  log: LogFn,
): AttachedUpgrades {
  const kind = server instanceof nodeHttps().Server ? 'wss' : 'ws';
  const upgrades = new Upgrades(path, log);
  function onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!upgrades.isOurs(request)) {
      // another path: the application's, if it listens for upgrades; nobody else would ever answer it
      if (server.listenerCount('upgrade') === 1) refuse(socket, 404);
      return;
    }
    if (!admit()) return refuse(socket, 503);
    socket.on('error', () => undefined);
    const transport = new WebSocketTransport(peerOf(socket as Socket, kind), socket);
    onTransport(transport);
    upgrades.upgrade(request, socket, head, transport);
  }
  server.on('upgrade', onUpgrade);
  return {
    get url() {
      const bound = server.address();
      if (bound === null || typeof bound === 'string') return '';
      return formatAddress({ kind, host: bound.address, port: bound.port, path });
    },
    close: () => void server.off('upgrade', onUpgrade),
  };
}
