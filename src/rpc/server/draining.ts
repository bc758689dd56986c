/**
 * `ctx.draining` for the calls of one connection: tells the handlers that asked (and only those) when the connection
 * starts to go away, whichever side began it (our close(), a server's or a mesh's, or the peer's GOAWAY; a failure too,
 * though then ctx.signal fires as well), so an endless stream can end cleanly instead of holding the close for its
 * whole grace period. One per session; a call registers only when its handler first reads `ctx.draining`, and
 * leaves when it is released, so most calls cost nothing and none outlives its call here.
 */
import type { Session } from '../../session/session.js';
import { Status } from '../../wire/constants.js';
import { RpcError } from '../rpc-error.js';

/** A call whose handler read `ctx.draining`. */
export interface DrainWatcher {
  onDraining(reason: RpcError): void;
}

export class DrainWatch {
  private readonly watchers = new Set<DrainWatcher>();
  private reason: RpcError | undefined;

  constructor(private readonly core: Session) {
    void core.goingAway.then(() => this.onGoingAway());
  }

  /** Watches for the drain; returns its reason at once when it has already begun (then `call` is not kept). */
  watch(call: DrainWatcher): RpcError | undefined {
    if (!this.core.acceptsStreams) return this.drainReason();
    this.watchers.add(call);
    return undefined;
  }

  unwatch(call: DrainWatcher): void {
    this.watchers.delete(call);
  }

  private onGoingAway(): void {
    const reason = this.drainReason();
    for (const call of [...this.watchers]) call.onDraining(reason);
    this.watchers.clear();
  }

  /** Why, as ctx.draining.reason: UNAVAILABLE (a handler that throws it tells its caller to go elsewhere). */
  private drainReason(): RpcError {
    if (this.reason !== undefined) return this.reason;
    const peerSaid = this.core.peerGoawayMessage;
    const error = this.core.error;
    let why: string;
    if (error !== undefined) why = `the connection failed: ${error.message}`;
    else if (peerSaid !== undefined) why = `the peer is closing the connection${peerSaid === '' ? '' : ` (${peerSaid})`}`;
    else why = 'this side is closing the connection';
    return (this.reason = new RpcError(Status.UNAVAILABLE, `draining: ${why}`));
  }
}
