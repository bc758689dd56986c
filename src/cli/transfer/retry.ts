/**
 * The loop around a transfer's attempts, for both directions: an attempt that fails with a resumable error (the
 * connection or the call was lost, a chunk came corrupted) is retried after a backoff, from wherever the receiver's
 * verified offset then is, until no attempt has made progress for `retryForMs`. Knows nothing of what an attempt does.
 */
import { RpcError } from '../../rpc/rpc-error.js';
import { Status } from '../../wire/constants.js';
import type { Client } from '../../rpc/client/typed-client.js';
import { isResumable, type TransferMethods } from './protocol.js';

/** A client of the transfer service, or a function giving one (a session's, a channel's, a mesh peer's; called per attempt). */
export type TransferClient = Client<TransferMethods> | (() => Client<TransferMethods> | Promise<Client<TransferMethods>>);

export function clientOf(client: TransferClient): Promise<Client<TransferMethods>> {
  return Promise.resolve(typeof client === 'function' ? client() : client);
}

/** What a caller hears besides progress: a cut (the attempt's error) and a resume (where the next attempt starts). */
export type TransferEvent =
  | { type: 'cut'; error: Error; verified: number; retryInMs: number }
  | { type: 'resume'; offset: number; attempt: number };

export interface RetryOptions {
  /** Give up after this long without progress since a cut (default 60 s): the last error is thrown. */
  retryForMs?: number;
  /** First wait before a retry (default 100 ms), doubling up to maxBackoffMs (default 2 s), with jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  signal?: AbortSignal;
  onEvent?: (event: TransferEvent) => void;
}

export const DEFAULT_RETRY_FOR_MS = 60_000;

/**
 * Runs `attempt(n)` until it resolves; `progress()` says how many bytes are verified (a retry budget starts again
 * when that grew). Rejects with the last error when it is not resumable, when the budget ran out, or on abort.
 */
export async function retrying<T>(attempt: (n: number) => Promise<T>, progress: () => number, options: RetryOptions): Promise<{ value: T; cuts: number }> {
  const retryForMs = options.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  const initial = options.initialBackoffMs ?? 100;
  const max = options.maxBackoffMs ?? 2000;
  let cuts = 0;
  let failingSince: number | undefined;
  let progressAtFailure = -1;
  let backoff = initial;
  for (let n = 0; ; n++) {
    options.signal?.throwIfAborted();
    try {
      return { value: await attempt(n), cuts };
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (!isResumable(error)) throw error;
      cuts++;
      const now = performance.now();
      if (failingSince === undefined || progress() > progressAtFailure) {
        failingSince = now;
        progressAtFailure = progress();
        backoff = initial;
      }
      const left = failingSince + retryForMs - now;
      if (left <= 0) throw giveUp(error as RpcError, retryForMs);
      const wait = Math.min(left, backoff * (0.75 + Math.random() / 2));
      backoff = Math.min(max, backoff * 2);
      options.onEvent?.({ type: 'cut', error: error as Error, verified: progress(), retryInMs: Math.round(wait) });
      await sleep(wait, options.signal);
    }
  }
}

function giveUp(error: RpcError, retryForMs: number): RpcError {
  const code = error.code === Status.DATA_LOSS ? Status.DATA_LOSS : Status.UNAVAILABLE;
  return new RpcError(code, `gave up after ${Math.round(retryForMs / 1000)} s without progress (--retry-for): ${error.rawMessage}`, { cause: error });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted(): void {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
