/**
 * Authorization of incoming calls: asks the application, for every call of every kind, whether this peer may call this
 * method. It sees the method exactly as routing matched it (`ctx.method` is the routed path; unknown paths never get
 * here), the request metadata, and the peer as the handshake (and TLS, once there) established it. Two forms: the
 * `authorize` option, which the call (server-call.ts) asks as it opens, before anything of its request is read; and
 * `authorizeCalls(fn)`, a server interceptor for applications that place it in their own chain, where it runs later:
 * after the request was decoded and validated (and an upload's window grown). Knows nothing of sessions.
 */
import { stderrLog, type LogFn } from '../../log.js';
import { isThenable } from '../../promises.js';
import { Status } from '../../wire/constants.js';
import { RpcError } from '../rpc-error.js';
import type { HandlerContext } from './context.js';
import type { ServerInterceptor } from './interceptor.js';

/**
 * Decides whether a call may run: `true` lets it through; a string refuses it with PERMISSION_DENIED and that reason
 * (the caller sees it). A throw or a rejection refuses it with PERMISSION_DENIED "authorization failed": the error
 * is logged, never sent.
 */
export type Authorize = (ctx: HandlerContext) => true | string | Promise<true | string>;

/**
 * `authorize` as a call asks it (kept in the declarations, which ServerHost names, but not exported from index):
 * undefined lets the call run, an RpcError (PERMISSION_DENIED) refuses it; a promise of either when authorize answers
 * later. Never throws, and its promise never rejects.
 */
export type CallAuthorizer = (ctx: HandlerContext) => RpcError | undefined | Promise<RpcError | undefined>;

/** What a caller is told when authorize() itself failed (threw, or answered neither true nor a string). */
const FAILED = 'authorization failed';

/**
 * @internal The `authorize` option as a check of each call (undefined without it: calls run unasked). `log` gets a
 * warn line when `authorize` fails (default: stderr). The common answer, `true` at once, allocates nothing.
 */
export function callAuthorizer(authorize: Authorize | undefined, log: LogFn = stderrLog): CallAuthorizer | undefined {
  if (authorize === undefined) return undefined;
  return (ctx) => {
    try {
      const verdict: unknown = authorize(ctx);
      if (verdict === true) return undefined;
      // inside the try: reading `then` may throw; Promise.resolve turns a then() that throws into a rejection
      if (isThenable(verdict)) {
        return Promise.resolve(verdict).then(
          (answer) => refusalOf(answer, ctx, log),
          (error: unknown) => failed(ctx, error, log),
        );
      }
      return refusalOf(verdict, ctx, log);
    } catch (error) {
      return failed(ctx, error, log);
    }
  };
}

/**
 * A server interceptor that runs `authorize` before the rest of the chain it is placed in (`serverInterceptors:
 * [authorizeCalls(fn)]`), for applications that compose it with their own interceptors. The `authorize` option runs
 * earlier, as the call opens: before its request is decoded or validated; prefer it unless the order matters. `log`
 * receives a warn line when `authorize` fails (default: stderr).
 */
export function authorizeCalls(authorize: Authorize, log: LogFn = stderrLog): ServerInterceptor {
  if (typeof authorize !== 'function') throw new TypeError('authorize must be a function (ctx) => true | reason');
  const check = callAuthorizer(authorize, log)!;
  return (next) => (call) => {
    const verdict = check(call.ctx);
    if (verdict === undefined) return next(call); // the common case: no promise, no allocation of ours
    if (verdict instanceof RpcError) return Promise.reject(verdict);
    return verdict.then((refusal) => (refusal === undefined ? next(call) : Promise.reject(refusal)));
  };
}

/** The refusal an answer of authorize means: undefined for true; a reason; anything else fails closed. */
function refusalOf(verdict: unknown, ctx: HandlerContext, log: LogFn): RpcError | undefined {
  if (verdict === true) return undefined;
  if (typeof verdict === 'string') return new RpcError(Status.PERMISSION_DENIED, verdict === '' ? 'permission denied' : verdict);
  // fail closed: undefined or false (a forgotten return) must not let the call through
  return failed(ctx, new TypeError(`authorize returned ${describe(verdict)}, not true or a reason`), log);
}

function failed(ctx: HandlerContext, error: unknown, log: LogFn): RpcError {
  const message = error instanceof Error ? error.message : String(error);
  try {
    log('warn', `authorize failed for ${ctx.method} from ${ctx.peer.address}: ${message}; the call is refused (PERMISSION_DENIED)`);
  } catch {
    // a log function that throws must not let the call through, nor fail anything else
  }
  return new RpcError(Status.PERMISSION_DENIED, FAILED);
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : typeof value === 'string' ? 'a string' : String(value);
}
