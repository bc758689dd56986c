/**
 * Redial delays: exponential backoff with full jitter (each delay uniform in 0..cap, the cap doubling per failed
 * attempt), so clients that lost the same server do not come back in step. The first redial after an established
 * connection is lost is spread over `lossSpreadMs`: that is the moment a whole fleet reconnects at once. Dials that
 * fail after a loss keep a cap of at least half that spread; otherwise the clients that came back while the server
 * was still down would retry within a few hundred ms of each other and crowd the first second after its restart.
 * (Simulated with 200 clients and the server down 0.5-5 s: the busiest second holds 13-16 % of the attempts at the
 * median, 19-20 % at the 99th percentile; without the floor, 17-24 % at the median.)
 */
import { MAX_TIMER_MS } from '../timers.js';

export interface ReconnectOptions {
  /** Cap of the first delay after a failed dial; doubles per failure. Default 500. */
  initialDelayMs?: number;
  /** Largest cap. Default 30 000. */
  maxDelayMs?: number;
  /**
   * The first redial after losing an established connection waits uniformly in 0..lossSpreadMs. Default 10 000 for a
   * channel (many clients of one server), 2 000 for a mesh (a restarted node is redialed by its peers only).
   */
  lossSpreadMs?: number;
  /**
   * Until the link first connects, dials failing within this long of the first one retry within initialDelayMs,
   * without growing: the peers of a cluster that is starting up are not listening yet. Default 0 for a channel,
   * 10 000 for a mesh.
   */
  startupRetryMs?: number;
}

export type ResolvedReconnectOptions = Required<ReconnectOptions>;

export function resolveReconnectOptions(options: ReconnectOptions = {}, defaults: ReconnectOptions = {}): ResolvedReconnectOptions {
  const resolved = {
    initialDelayMs: options.initialDelayMs ?? defaults.initialDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? defaults.maxDelayMs ?? 30_000,
    lossSpreadMs: options.lossSpreadMs ?? defaults.lossSpreadMs ?? 10_000,
    startupRetryMs: options.startupRetryMs ?? defaults.startupRetryMs ?? 0,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) throw new RangeError(`reconnect.${name} must be a number of ms in 0..2^31-1, got ${value}`);
  }
  if (resolved.maxDelayMs < resolved.initialDelayMs) throw new RangeError('reconnect.maxDelayMs must be at least reconnect.initialDelayMs');
  return resolved;
}

export class Backoff {
  private failures = 0;
  private connectedOnce = false;
  private firstFailureAt: number | undefined;
  /** Smallest cap for failed dials: half the loss spread once a connection was lost, 0 before any. */
  private floorMs = 0;

  constructor(
    private readonly options: ResolvedReconnectOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** Delay before the next attempt after a failed one. */
  afterFailure(): number {
    if (!this.connectedOnce) {
      const now = performance.now();
      this.firstFailureAt ??= now;
      if (now - this.firstFailureAt < this.options.startupRetryMs) return this.random() * this.options.initialDelayMs;
    }
    const grown = this.options.initialDelayMs * 2 ** Math.min(this.failures, 30);
    const cap = Math.min(this.options.maxDelayMs, Math.max(this.floorMs, grown));
    this.failures++;
    return this.random() * cap;
  }

  /** A dial succeeded: startup retries are over for good. */
  connected(): void {
    this.connectedOnce = true;
  }

  /** Delay before redialing a connection that was established, lasted, and was lost; failures start over. */
  afterLoss(): number {
    this.failures = 0;
    this.floorMs = this.options.lossSpreadMs / 2;
    return this.random() * this.options.lossSpreadMs;
  }

  /** A refusal that will not heal by retrying soon (version mismatch, credentials refused): wait the longest delay. */
  afterPermanentFailure(): number {
    this.failures++;
    return this.options.maxDelayMs * (0.5 + this.random() / 2);
  }
}
