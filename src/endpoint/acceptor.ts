/**
 * What `listen()` and `attach()` share: each accepted transport becomes a session with the server's services, counted
 * by the listener's caps (listener-limits.ts) until its handshake is done, held in `sessions` from then (once its peer
 * is admitted) until it closes, and closed gracefully with the rest when the server closes, in its handshake or not.
 * Knows nothing of sockets, ports or schemes.
 */
import { ProtocolError } from '../wire/errors.js';
import { stderrLog, type LogFn } from '../log.js';
import type { Transport } from '../transport/transport.js';
import { Registry } from '../rpc/server/registry.js';
import { checkCloseOptions, checkRpcSessionOptions, RpcSession, type RpcSessionOptions } from '../rpc/rpc-session.js';
import { StatsSum } from '../rpc/session-stats.js';
import { stallThresholdOf } from '../rpc/inspect/inspect-service.js';
import { withInspectService } from '../rpc/inspect/inspect-serving.js';
import { serverStatsOf, type ServerStats } from './server-stats.js';
import { checkListenerLimits, ListenerLimits, type ListenerLimitOptions } from './listener-limits.js';

/** The options of an accepting side that this module reads (ListenOptions has them all). */
export interface AcceptOptions extends RpcSessionOptions, ListenerLimitOptions {
  onSession?: (session: RpcSession) => void;
  log?: LogFn;
}

/** @internal One server's sessions. */
export class SessionAcceptor {
  /** Sessions whose handshake is done: their peer was admitted (its node name is no longer only a claim). */
  readonly sessions = new Set<RpcSession>();
  /** Sessions still in their handshake: not in `sessions` yet, closed with them. */
  private readonly handshaking = new Set<RpcSession>();
  readonly limits: ListenerLimits;
  private readonly registry: Registry;
  /** Where this server's lines go (ListenOptions.log, or stderr). */
  readonly log: LogFn;
  /** What the server's sessions counted, closed ones kept (server.stats()). */
  private readonly counted = new StatsSum();

  /** Throws for a bad option, before anything listens. `url` names the server in log lines. */
  constructor(
    private readonly options: AcceptOptions,
    url: () => string,
  ) {
    checkRpcSessionOptions(options); // a bad option throws here, not inside the accept callback of the first connection
    checkListenerLimits(options);
    // inspect on: the snapshot covers every session of this server (or, under a mesh, every session of the node)
    const services = withInspectService(options.services, stallThresholdOf(options.inspect), options.nodeName ?? '', options.inspectScope ?? (() => this.sessions));
    this.registry = new Registry(services, options.serverInterceptors);
    this.log = options.log ?? stderrLog;
    this.limits = new ListenerLimits(options, url, this.log);
  }

  /** The server's sessions summed (closed ones kept) and each open one (server-stats.ts). */
  stats(): ServerStats {
    return serverStatsOf(this.sessions, this.counted);
  }

  /** Connections held: admitted sessions and those still in their handshake. */
  get connectionCount(): number {
    return this.sessions.size + this.handshaking.size;
  }

  /** A connection was accepted: its session starts its handshake (which runs in the session, never here). */
  readonly accept = (transport: Transport): void => {
    let session: RpcSession;
    try {
      session = new RpcSession(transport, 'acceptor', this.options, this.registry);
    } catch {
      transport.destroy();
      return;
    }
    const { sessions, handshaking } = this;
    handshaking.add(session);
    this.limits.handshakeStarted(session.ready, () => transport.destroy());
    void session.closed.then((error) => {
      handshaking.delete(session);
      sessions.delete(session);
      this.counted.retire(session);
      // the handshake runs in the session, never in this accept callback: one slow or bogus client blocks nobody;
      // a dialer we refused (GW_ERR_UNAUTHENTICATED, GW_ERR_REFUSED) is one line too, with the reason, never a token
      if (error instanceof ProtocolError) this.log('warn', `closed the connection from ${transport.peer.address}: ${error.message}`);
    });
    session.ready
      .then(
        () => {
          if (!handshaking.delete(session)) return; // closed in the meantime
          sessions.add(session);
          this.options.onSession?.(session);
        },
        () => undefined,
      )
      // onSession is application code: if it throws, that session is not set up, so close it, rather than let the
      // error become an unhandled rejection (which ends a Node process)
      .catch((error: unknown) => session.destroy(error instanceof Error ? error : new Error(String(error))));
  };

  /**
   * Stops accepting (`stopAccepting`, which resolves once the listener is closed) and closes every session gracefully
   * (GOAWAY; calls in flight finish within graceMs). A bad option closes nothing.
   */
  async close(closeOptions: { graceMs?: number } | undefined, stopAccepting: () => Promise<void>): Promise<void> {
    checkCloseOptions(closeOptions);
    this.limits.close();
    const closing = stopAccepting();
    await Promise.all([...this.sessions, ...this.handshaking].map((s) => s.close(closeOptions)));
    await closing;
  }
}
