/**
 * Authorization of incoming calls: a server interceptor that asks the application, for every call of every kind,
 * whether this peer may call this method, before the handler (and any other interceptor) runs. It sees the method
 * exactly as routing matched it (`ctx.method` is the routed path; unknown paths never reach an interceptor), and the
 * peer as the handshake (and TLS, once there) established it. Knows nothing of sessions.
 */
import { stderrLog, type LogFn } from '../../log.js';
import { isThenable } from '../../promises.js';
import { Status } from '../../wire/constants.js';
import { RpcError } from '../rpc-error.js';
import type { HandlerContext } from './context.js';
import type { IncomingCall, ServerInterceptor, ServerNext } from './interceptor.js';

/**
 * Decides whether a call may run: `true` lets it through; a string refuses it with PERMISSION_DENIED and that reason
 * (the caller sees it). A throw or a rejection refuses it with PERMISSION_DENIED "authorization failed": the error
 * is logged, never sent.
 */
export type Authorize = (ctx: HandlerContext) => true | string | Promise<true | string>;

/** What a caller is told when authorize() itself failed (threw, or answered neither true nor a string). */
const FAILED = 'authorization failed';

/**
 * A server interceptor that runs `authorize` before every call it wraps (`serverInterceptors: [authorizeCalls(fn)]`);
 * the `authorize` option installs it outermost. `log` receives a warn line when `authorize` fails (default: stderr).
 */
export function authorizeCalls(authorize: Authorize, log: LogFn = stderrLog): ServerInterceptor {
  if (typeof authorize !== 'function') throw new TypeError('authorize must be a function (ctx) => true | reason');
  return (next) => (call) => {
    let verdict: unknown;
    try {
      verdict = authorize(call.ctx);
    } catch (error) {
      return Promise.reject(failed(call, error, log));
    }
    if (verdict === true) return next(call); // the common case: no promise, no allocation of ours
    if (isThenable(verdict)) {
      return Promise.resolve(verdict).then(
        (answer) => proceed(answer, call, next, log),
        (error: unknown) => {
          throw failed(call, error, log);
        },
      );
    }
    return proceed(verdict, call, next, log);
  };
}

/** @internal The server interceptors of a side: `authorize` (when given) outermost, then the application's own. */
export function serverInterceptorsOf(options: {
  authorize?: Authorize;
  serverInterceptors?: readonly ServerInterceptor[];
  log?: LogFn;
}): readonly ServerInterceptor[] | undefined {
  if (options.authorize === undefined) return options.serverInterceptors;
  return [authorizeCalls(options.authorize, options.log), ...(options.serverInterceptors ?? [])];
}

function proceed(verdict: unknown, call: IncomingCall, next: ServerNext, log: LogFn): Promise<Awaited<ReturnType<ServerNext>>> {
  if (verdict === true) return next(call);
  if (typeof verdict === 'string') return Promise.reject(new RpcError(Status.PERMISSION_DENIED, verdict === '' ? 'permission denied' : verdict));
  // fail closed: undefined or false (a forgotten return) must not let the call through
  return Promise.reject(failed(call, new TypeError(`authorize returned ${describe(verdict)}, not true or a reason`), log));
}

function failed(call: IncomingCall, error: unknown, log: LogFn): RpcError {
  const message = error instanceof Error ? error.message : String(error);
  log('warn', `authorize failed for ${call.ctx.method} from ${call.ctx.peer.address}: ${message}; the call is refused (PERMISSION_DENIED)`);
  return new RpcError(Status.PERMISSION_DENIED, FAILED);
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : typeof value === 'string' ? 'a string' : String(value);
}
