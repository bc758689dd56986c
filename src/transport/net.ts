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

export function dial(url: string, options: DialOptions = {}): Promise<Transport> {
  const address = parseAddress(url);
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const socket =
      address.kind === 'unix' ? createConnection({ path: address.path }) : createConnection({ host: address.host, port: address.port });
    // none past what a timer can count (Infinity included): the OS's own connect timeout applies
    const timer = limitTimer(timeoutMs, () => fail(new Error(`dial ${url}: no connection within connectTimeoutMs (${timeoutMs} ms)`)));
    const onAbort = (): void => fail(new Error(`dial ${url}: aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    function cleanup(): void {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('connect', onConnect);
    }
    function fail(error: Error): void {
      cleanup();
      socket.destroy();
      reject(error);
    }
    function onError(error: Error): void {
      fail(new Error(`dial ${url}: ${error.message}`, { cause: error }));
    }
    function onConnect(): void {
      cleanup();
      resolve(new SocketTransport(socket, peerOf(socket, address)));
    }
    if (options.signal?.aborted) return onAbort();
    socket.once('error', onError);
    socket.once('connect', onConnect);
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
  const server: Server = createServer({ pauseOnConnect: true }, (socket) => {
    // an accepted socket may fail before the session attaches; swallow so it cannot become an uncaught error
    socket.on('error', () => undefined);
    onTransport(new SocketTransport(socket, peerOf(socket, address)));
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
      : formatAddress({ kind: 'tcp', host: address.host, port: bound.port });
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
