/**
 * Client calls and their caller's AbortSignal: one 'abort' listener per signal however many calls share it, and the
 * error an aborted call fails with (CANCELLED, or the signal's own RpcError / DEADLINE_EXCEEDED reason).
 */
import { Status } from '../../wire/constants.js';
import { RpcError } from '../rpc-error.js';

export function abortError(signal: AbortSignal): RpcError {
  const reason: unknown = signal.reason;
  if (reason instanceof RpcError) return reason;
  const error = RpcError.from(reason, Status.CANCELLED);
  return error.code === Status.DEADLINE_EXCEEDED ? error : new RpcError(Status.CANCELLED, 'the caller cancelled the call', { cause: reason });
}

/**
 * One 'abort' listener per signal, however many calls share it: a listener per call would trip Node's
 * MaxListenersExceededWarning as soon as eleven calls share one AbortController.
 */
export interface AbortWatcher {
  onAbort(signal: AbortSignal): void;
}

const callsBySignal = new WeakMap<AbortSignal, Set<AbortWatcher>>();

export function watchSignal(signal: AbortSignal, call: AbortWatcher): void {
  let calls = callsBySignal.get(signal);
  if (calls === undefined) {
    calls = new Set();
    callsBySignal.set(signal, calls);
    signal.addEventListener('abort', onSignalAbort, { once: true });
  }
  calls.add(call);
}

export function unwatchSignal(signal: AbortSignal, call: AbortWatcher): void {
  const calls = callsBySignal.get(signal);
  if (calls === undefined || !calls.delete(call) || calls.size > 0) return;
  callsBySignal.delete(signal);
  signal.removeEventListener('abort', onSignalAbort);
}

function onSignalAbort(this: AbortSignal): void {
  const calls = callsBySignal.get(this);
  callsBySignal.delete(this);
  if (calls !== undefined) for (const call of [...calls]) call.onAbort(this);
}
