/**
 * `attach(httpServer, { path, ... })`: gridwire on the port of an application's own node:http or node:https server,
 * which keeps serving its other routes. Upgrades for `path` become sessions exactly as listen()'s connections do
 * (acceptor.ts); everything else on the server stays the application's (transport/websocket.ts says what happens to
 * an upgrade for another path). Knows nothing of frames or of the WebSocket protocol.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { parseAddress } from '../transport/address.js';
import { attachWebSocket } from '../transport/websocket.js';
import type { ListenOptions, Server } from './endpoints.js';
import { SessionAcceptor } from './acceptor.js';

export interface AttachOptions extends Omit<ListenOptions, 'tls'> {
  /**
   * The path whose WebSocket upgrades are gridwire's, e.g. '/gridwire': matched exactly, as written (no decoding, no
   * normalisation), whatever the query. Required: on a port shared with an application, the route is its choice.
   */
  path: string;
}

/**
 * Takes the WebSocket upgrades for `options.path` on `server` (http: `ws://`, https: `wss://`, with the server's own
 * TLS settings), and gives each a session with `options.services`, as listen() does. The server may be listening
 * already or not yet. `maxConnections` counts gridwire's sessions on it (an upgrade beyond is refused with 503);
 * `maxPendingHandshakes` and `handshakeTimeoutMs` count from the upgrade request, since the server owned the
 * connection before: bound the time a request may take on the server itself (`headersTimeout`, `requestTimeout`,
 * `maxHeadersCount`; docs/OPTIONS.md "attach"). On an https server, who completes TLS is the server's own verdict
 * (`requestCert`, `ca`, `rejectUnauthorized`); gridwire refuses an upgrade whose client certificate TLS did not verify
 * (403, logged), so `ctx.peer.identity` is only ever a verified certificate.
 *
 * The Server it returns: `url` is the address clients dial ('' while the server is not listening), `sessions` the
 * sessions open, and `close()` closes those sessions and stops taking upgrades, without closing `server`.
 */
export function attach(server: HttpServer | HttpsServer, options: AttachOptions): Server {
  const path = options.path;
  if (typeof path !== 'string' || !path.startsWith('/')) throw new TypeError('attach: options.path is required, a path such as "/gridwire"');
  parseAddress(`ws://localhost${path}`); // the same characters as an address's path: its TypeError says which
  const acceptor = new SessionAcceptor(options, () => upgrades.url);
  const limits = acceptor.limits;
  const admit = (): boolean => {
    if (acceptor.connectionCount < limits.maxConnections) return true;
    limits.dropped();
    return false;
  };
  const upgrades = attachWebSocket(server, path, acceptor.accept, admit, acceptor.log);
  return {
    get url() {
      return upgrades.url;
    },
    sessions: acceptor.sessions,
    stats: () => acceptor.stats(),
    close: (closeOptions) =>
      acceptor.close(closeOptions, () => {
        upgrades.close();
        return Promise.resolve();
      }),
    setSecureContext() {
      throw new TypeError("setSecureContext: an attached gridwire uses the app's server and its TLS: call that server's own setSecureContext");
    },
  };
}
