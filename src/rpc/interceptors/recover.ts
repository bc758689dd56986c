/**
 * Exception recovery, a server interceptor: a handler (or an interceptor inside this one) that throws anything but an
 * RpcError fails its call INTERNAL with a generic message, and the original goes to the logger with its stack. Without
 * it, a plain Error's message travels to the caller as UNKNOWN (server-call.ts sends the message, never the stack),
 * and a message can hold a file path, a SQL statement or a hostname. RpcErrors, which a handler throws to be read,
 * pass unchanged, as do AbortError and TimeoutError (CANCELLED and DEADLINE_EXCEEDED, with their standard messages).
 * Streams and downloads: a failure while their responses or body are pumped is recovered the same way.
 */
import { Status } from '../../wire/constants.js';
import { RpcError } from '../rpc-error.js';
import type { IncomingCall, ServerInterceptor } from '../server/interceptor.js';
import { ObservedIterator } from './call-end.js';
import { checkLogger, safeLog, stderrLogger, type Logger } from './logger.js';

export interface RecoveryOptions {
  /** Where the original error goes, at `error` with its stack as `err` (default: stderr). */
  logger?: Logger;
  /** What the caller is told (default "internal error"). */
  message?: string;
}

/** A server interceptor that hides a handler's unexpected errors from the caller behind INTERNAL. */
export function recoverExceptions(options: RecoveryOptions = {}): ServerInterceptor {
  const logger = options.logger ?? stderrLogger;
  checkLogger(logger, 'recoverExceptions: logger');
  const message = options.message ?? 'internal error';
  if (typeof message !== 'string') throw new TypeError('recoverExceptions: message must be a string');
  const recover = (call: IncomingCall, error: unknown): RpcError => {
    if (error instanceof RpcError) return error;
    const name = (error as { name?: unknown } | null)?.name;
    if ((name === 'AbortError' || name === 'TimeoutError') && error instanceof Error) return RpcError.from(error);
    const peer = call.ctx.peer;
    safeLog(logger, 'error', { err: error, method: call.method.path, peer: peer.nodeName || peer.address }, `handler of ${call.method.path} threw; the caller gets INTERNAL`);
    return new RpcError(Status.INTERNAL, message);
  };
  return (next) => (call) => {
    let answer;
    try {
      answer = next(call);
    } catch (error) {
      return Promise.reject(recover(call, error));
    }
    return answer.then(
      (result) => {
        if (result.kind === 'serverStream' || result.kind === 'bidi') return { kind: result.kind, responses: recovering(call, result.responses, recover) };
        if (result.kind === 'download' && !(result.body instanceof Uint8Array)) return { kind: result.kind, body: recovering(call, result.body, recover) };
        return result;
      },
      (error: unknown) => {
        throw recover(call, error);
      },
    );
  };
}

/** `source`, with what its reading throws recovered (its `return()` passed on, so a Readable is still closed). */
function recovering<T>(call: IncomingCall, source: Iterable<T> | AsyncIterable<T>, recover: (call: IncomingCall, error: unknown) => RpcError): AsyncIterableIterator<T> {
  return new ObservedIterator(source, noop, noop, undefined, (error) => recover(call, error));
}

function noop(): void {}
