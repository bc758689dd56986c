/**
 * Dialing and listening on `tcp://` and `unix://` addresses with node:net. Each accepted or dialed socket becomes a
 * SocketTransport; nothing here knows about frames.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { unlink } from 'node:fs/promises';
import { formatAddress, parseAddress, type Address } from './address.js';
import { SocketTransport } from './socket.js';
import type { PeerInfo, Transport } from './transport.js';
import { limitTimer } from '../timers.js';

export interface Listener {
  /** The address actually bound (with the real port when 0 was asked for). */
  readonly url: string;
  close(): Promise<void>;
}

function peerOf(socket: Socket, address: Address): PeerInfo {
  if (address.kind === 'unix') return { transport: 'unix', address: formatAddress(address) };
  return {
    transport: 'tcp',
    address: formatAddress({ kind: 'tcp', host: socket.remoteAddress ?? '?', port: socket.remotePort ?? 0 }),
  };
}

export interface DialOptions {
  signal?: AbortSignal;
  /** Give up after this long (`connect` counts the dial and the handshake together). Default 10 000 ms. */
  connectTimeoutMs?: number;
}

/** What a plain TCP dialer that saw the peer hang up without a byte should consider (a TLS port does just that). */
function silentTcpClose(): Error {
  return new Error('the peer closed the connection during the handshake without sending a byte: if it is a TLS port, use tls://');
}

export function dial(url: string, options: DialOptions = {}): Promise<Transport> {
  const address = parseAddress(url);
  return dialSocket(url, options, {
    socket: address.kind === 'unix' ? createConnection({ path: address.path }) : createConnection({ host: address.host, port: address.port }),
    readyEvent: 'connect',
    ready: (socket) => new SocketTransport(socket, peerOf(socket, address), address.kind === 'unix' ? undefined : silentTcpClose),
    failure: (error) => new Error(`dial ${url}: ${error.message}`, { cause: error }),
  });
}

/** @internal One dial's socket: the event that says it is ready, the transport it then becomes, what an error means. */
export interface SocketDial<S extends Socket = Socket> {
  socket: S;
  readyEvent: 'connect' | 'secureConnect';
  ready(socket: S): Transport;
  failure(error: Error): Error;
}

/** @internal Waits for `dial.socket` to be ready, within connectTimeoutMs and the signal; the socket is destroyed on failure. */
export function dialSocket<S extends Socket>(url: string, options: DialOptions, dial: SocketDial<S>): Promise<Transport> {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const socket = dial.socket;
  return new Promise((resolve, reject) => {
    // none past what a timer can count (Infinity included): the OS's own connect timeout applies
    const timer = limitTimer(timeoutMs, () => fail(new Error(`dial ${url}: no connection within connectTimeoutMs (${timeoutMs} ms)`)));
    const onAbort = (): void => fail(new Error(`dial ${url}: aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    function cleanup(): void {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off(dial.readyEvent, onReady);
    }
    function fail(error: Error): void {
      cleanup();
      socket.on('error', () => undefined); // destroying may still report a late error: it must not be uncaught
      socket.destroy();
      reject(error);
    }
    function onError(error: Error): void {
      fail(dial.failure(error));
    }
    function onReady(): void {
      cleanup();
      resolve(dial.ready(socket));
    }
    if (options.signal?.aborted) return onAbort();
    socket.once('error', onError);
    socket.once(dial.readyEvent, onReady);
  });
}

export interface ListenOnOptions {
  /**
   * Sockets open at once (sessions, handshakes, closing ones still lingering); beyond, a new socket is closed as it is
   * accepted, before anything is allocated for it, and `onDrop` is called. Default: no limit.
   */
  maxConnections?: number;
  onDrop?: () => void;
}

export async function listenOn(url: string, onTransport: (transport: Transport) => void, options: ListenOnOptions = {}): Promise<Listener> {
  const address = parseAddress(url);
  return acceptSockets(url, (socket) => onTransport(new SocketTransport(socket, peerOf(socket, address))), options);
}

/**
 * @internal A node:net server on `url` (tcp:// or unix://, or the TCP under tls://) that hands each accepted socket,
 * paused, to `onSocket`; a transport that has its own handshake (TLS) wraps it there.
 */
export async function acceptSockets(url: string, onSocket: (socket: Socket) => void, options: ListenOnOptions = {}): Promise<Listener> {
  const address = parseAddress(url);
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    // an accepted socket may fail before the session attaches; swallow so it cannot become an uncaught error
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  // node:net counts the sockets and closes the one beyond the limit itself, before making a Socket of it ('drop')
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;
  if (options.onDrop !== undefined) server.on('drop', options.onDrop);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (address.kind === 'unix') server.listen(address.path, resolve);
    else server.listen(address.port, address.host, resolve);
  });
  server.on('error', () => undefined);
  const bound = server.address();
  const boundUrl =
    address.kind === 'unix' || bound === null || typeof bound === 'string'
      ? url
      : formatAddress({ ...address, port: bound.port });
  return {
    url: boundUrl,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          if (address.kind === 'unix') unlink(address.path).catch(() => undefined).finally(resolve);
          else resolve();
        });
      }),
  };
}
