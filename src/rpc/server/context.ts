/**
 * What a handler and a server interceptor learn about an incoming call: the abort signal, whether the connection is
 * draining, the deadline, the peer, the request metadata, and a place for trailer metadata. A handler's CallContext adds the session (../handler.ts); this
 * file does not know sessions, so the call code below it never imports the session above it.
 */
import type { SessionPeer } from '../../session/handshake.js';
import type { Metadata } from '../../wire/metadata.js';
import type { RpcError } from '../rpc-error.js';

/** A handler as the call code holds it: typed at serve(), opaque here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the argument types depend on the method's kind
export type AnyHandler = (...args: any[]) => unknown;

export interface HandlerContext {
  /** `service/method`. */
  readonly method: string;
  /** Aborts when the caller cancels, the deadline passes or the connection is lost; `reason` is an RpcError. */
  readonly signal: AbortSignal;
  /**
   * Aborts when the connection begins a graceful close, from either side: this side's `close()` (`server.close()`,
   * `channel.close()`, `mesh.stop()`...) or the peer's GOAWAY. The call may go on; a handler of an endless stream (a
   * watch, a tail) ends cleanly on it, so the close need not wait out its grace period. `reason` is an RpcError
   * (UNAVAILABLE) saying which side began it. Made on first read, so handlers that never read it pay nothing.
   */
  readonly draining: AbortSignal;
  /** The deadline as a local `Date.now()` timestamp, or undefined when the caller set none. */
  readonly deadline: number | undefined;
  readonly peer: SessionPeer;
  /** Request metadata. */
  readonly metadata: Metadata;
  /** Trailer metadata: entries set here travel back with the response (or the error). */
  readonly trailer: Metadata;
}

/**
 * `ctx.signal`, made when a handler first reads it (most never do): a call holds nothing, then the error it was
 * aborted with, or the controller once the signal was read. One field in the call, no object until then.
 */
export type LazyAbort = AbortController | RpcError | undefined;

/** The controller behind `ctx.signal`, made on first read: aborted from the start when the call already was. */
export function abortControllerOf(state: LazyAbort): AbortController {
  if (state instanceof AbortController) return state;
  const controller = new AbortController();
  if (state !== undefined) controller.abort(state);
  return controller;
}

/** The handler must stop: its signal aborts now, or the reason is kept for a signal read later. The first reason wins. */
export function abortLazily(state: LazyAbort, reason: RpcError): LazyAbort {
  if (state instanceof AbortController) state.abort(reason);
  return state ?? reason;
}
