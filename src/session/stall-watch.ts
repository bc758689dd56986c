/**
 * The stall watchdog of `inspect`: finds the streams held up by flow control for longer than a threshold, in either
 * direction. Ours wait for the peer's credit: the peer is slow (its reader does not take what we send). The peer's
 * wait for ours: this side is slow (what we received waits unconsumed and our receive window is used up). One coarse
 * interval per session (a quarter of the threshold, between 10 ms and 1 s), only while `inspect` is on, unref'd; it
 * walks the streams, notes when a receive window filled up (the send side notes its own stalls as they begin:
 * session-counters.ts), and reports each newly stalled stream once. No timer per stream or per call. Knows nothing of
 * methods: the reporter names them.
 */
import { MIN_DATA_FRAME_BYTES } from '../wire/constants.js';
import type { Stream } from './stream.js';

/** Which side holds a stalled stream up: `peer` (it grants us no credit) or `local` (our reader takes nothing). */
export type StallSide = 'peer' | 'local';

export interface StreamStall {
  readonly stream: Stream;
  readonly side: StallSide;
  /** How long it has been blocked, in ms. */
  readonly blockedMs: number;
}

/** `stream`'s stall, if it has been blocked for `thresholdMs` or longer at `now` (performance.now()). */
export function stallOf(stream: Stream, now: number, thresholdMs: number): StreamStall | undefined {
  const sendBlocked = stream.creditBlockedSince;
  if (sendBlocked !== undefined && now - sendBlocked >= thresholdMs) return { stream, side: 'peer', blockedMs: now - sendBlocked };
  const receiveFull = stream.receiveFullSince;
  if (receiveFull !== undefined && now - receiveFull >= thresholdMs) return { stream, side: 'local', blockedMs: now - receiveFull };
  return undefined;
}

/** True while the peer cannot send on `stream` because our reader has not taken what it already sent. */
function receiveWindowFull(stream: Stream): boolean {
  return stream.unconsumedItems > 0 && !stream.remoteDone && (stream.recvWindow < MIN_DATA_FRAME_BYTES || stream.recvMessageWindow <= 0);
}

/** One session's watch. */
export class StallWatch {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly streams: () => Iterable<Stream>,
    readonly thresholdMs: number,
    /** A stream newly stalled past the threshold; called once per stream. */
    private readonly report: (stall: StreamStall) => void,
  ) {
    this.timer = setInterval(this.tick, Math.min(1000, Math.max(10, thresholdMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private readonly tick = (): void => {
    const now = performance.now();
    for (const stream of this.streams()) {
      if (!receiveWindowFull(stream)) stream.receiveFullSince = undefined;
      else stream.receiveFullSince ??= now;
      if (stream.stallReported) continue;
      const stall = stallOf(stream, now, this.thresholdMs);
      if (stall === undefined) continue;
      stream.stallReported = true;
      try {
        this.report(stall);
      } catch {
        // a log function that throws must not stop the watch
      }
    }
  };
}
