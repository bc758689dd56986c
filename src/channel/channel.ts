/**
 * A channel: a connection to one address that stays connected. It dials at once, redials with backoff and jitter
 * when the connection fails or is lost, and gives typed clients whose calls use whichever connection is current
 * (fail-fast by default, `waitForReady` to wait; retried once when provably never processed). Services passed in
 * `services` are served to the peer on every connection, as with `connect`.
 */
import { stderrLog, type LogFn } from '../log.js';
import { checkConnectOptions, type ConnectOptions } from '../endpoint/endpoints.js';
import { parseAddress } from '../transport/address.js';
import { withSealedAuth } from '../rpc/auth.js';
import { TypedClients, type Client } from '../rpc/client/typed-client.js';
import { deadlineOf } from '../rpc/deadline.js';
import { checkCloseOptions, type RpcSession } from '../rpc/rpc-session.js';
import type { SessionStats } from '../rpc/session-stats.js';
import type { MethodMap, ServiceDef } from '../rpc/service.js';
import { resolveReconnectOptions, type ReconnectOptions } from './backoff.js';
import { Link, type LinkState, type LinkStateEvent } from './link.js';
import { RoutedCaller } from './routed-caller.js';

export interface ChannelOptions extends ConnectOptions {
  reconnect?: ReconnectOptions;
  /** Where reconnect trouble is reported. Default: warnings to stderr. */
  log?: LogFn;
}

export class Channel {
  private readonly link: Link;
  private readonly clients: TypedClients;

  constructor(readonly url: string, options: ChannelOptions = {}) {
    parseAddress(url); // a malformed address throws its TypeError here: redialing it would never succeed
    checkConnectOptions(options, url); // a bad option (tls options that do not fit the address too) throws here, not at every redial
    // `log` stays: authorize reports to it too; the token is kept sealed (never shown by util.inspect of the channel)
    const { reconnect, ...connectOptions } = withSealedAuth(options);
    const link = new Link(url, options.log ?? stderrLog);
    link.dialWith({ url, options: connectOptions, reconnect: resolveReconnectOptions(reconnect) });
    this.link = link;
    const caller = new RoutedCaller({
      pick: () => link.session,
      wait: (_kind, failFast, signal, deadline) => link.whenReady(signal, deadline, failFast),
      dialing: () => link.dialing,
      unavailable: () => link.unavailable(),
    });
    this.clients = new TypedClients(caller, options.clientInterceptors);
  }

  /** `connecting`, `ready`, `backoff` or `closed`. */
  get state(): LinkState {
    return this.link.state;
  }

  /** The current connection, if one is ready. */
  get session(): RpcSession | undefined {
    return this.link.session;
  }

  /** Round-trip time of the current connection's last answered ping (keepalive or `session.ping()`), in ms. */
  get rttMs(): number | undefined {
    return this.link.session?.rttMs;
  }

  /** What the channel's connections counted, summed over every one it has had (rpc/session-stats.ts). */
  stats(): SessionStats {
    return this.link.stats();
  }

  /** Listens to state changes: `channel.on('state', ({ state, error, delayMs }) => ...)`. */
  on(event: 'state', listener: (event: LinkStateEvent) => void): this {
    this.link.on(event, listener);
    return this;
  }

  off(event: 'state', listener: (event: LinkStateEvent) => void): this {
    this.link.off(event, listener);
    return this;
  }

  /** Resolves with the session once connected (or at once); rejects when the signal aborts or the channel closes. */
  whenReady(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<RpcSession> {
    const deadline = deadlineOf(options);
    return this.link.whenReady(options.signal, deadline);
  }

  /** A typed client whose calls go over whichever connection is current. */
  client<M extends MethodMap>(service: ServiceDef<M>): Client<M> {
    return this.clients.client(service);
  }

  /** Stops redialing and closes the connection gracefully (GOAWAY; calls in flight get graceMs, default 10 s). */
  close(options?: { graceMs?: number }): Promise<void> {
    try {
      checkCloseOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.link.close(options);
  }
}

/** Opens a channel to `url` (tcp://, tls:// or unix://): connects in the background and stays connected until closed. */
export function channel(url: string, options: ChannelOptions = {}): Channel {
  return new Channel(url, options);
}
