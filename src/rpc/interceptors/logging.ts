/**
 * Logging interceptors, one per side: one line per call when it ends (method, kind, status, duration, peer, bulk
 * bytes) to a pino-compatible logger. Silent by default: without a logger they pass every call straight on. They
 * never log metadata values unless asked for by key, and never those of auth-like keys (`authorization`, `*token*`,
 * `*secret*`, `cookie`...), so a credential cannot end up in a log.
 *
 * Levels by what the status says about whom: OK at `okLevel` (default `info`); errors the caller or the network
 * caused (INVALID_ARGUMENT, NOT_FOUND, DEADLINE_EXCEEDED, UNAVAILABLE...) at `warn`; errors that say the server is
 * broken (UNKNOWN, INTERNAL, UNIMPLEMENTED, DATA_LOSS) at `error`.
 */
import { Status, statusName } from '../../wire/constants.js';
import type { ClientInterceptor } from '../client/outgoing-call.js';
import type { MethodInfo } from '../interceptor.js';
import type { RpcError } from '../rpc-error.js';
import type { ServerInterceptor } from '../server/interceptor.js';
import type { Metadata } from '../../wire/metadata.js';
import { observeClientCall, observeServerCall } from './call-end.js';
import { checkLogger, safeLog, type Logger } from './logger.js';

export interface LoggingOptions {
  /** Where the lines go; without one, nothing is logged and the interceptor adds nothing to a call. */
  logger?: Logger | undefined;
  /** The level of a call that ended OK: `info` (default) or `debug`. */
  okLevel?: 'debug' | 'info';
  /**
   * Request metadata keys whose values go into the line (`metadata: { key: value }`), e.g. `['x-request-id']`.
   * Default none. Keys that look like credentials are never logged, even when listed.
   */
  metadataKeys?: readonly string[];
  /** Client side only: the name the line gives the peer (a client interceptor does not know its connection). */
  peer?: string;
}

/** What one line holds (the object given to the logger). */
export interface CallLogLine {
  side: 'client' | 'server';
  method: string;
  kind: string;
  status: string;
  durationMs: number;
  peer?: string;
  bytes?: number;
  error?: string;
  metadata?: Record<string, string>;
}

const SERVER_FAULTS: ReadonlySet<number> = new Set([Status.UNKNOWN, Status.INTERNAL, Status.UNIMPLEMENTED, Status.DATA_LOSS]);

/** Keys whose values are credentials, whatever the application asks: never written to a log. */
const SECRET_KEY = /auth|token|secret|passw|cookie|credential|api-?key|session|signature|bearer/i;

/** A client interceptor logging one line per call this side makes, when it ends. */
export function logClientCalls(options: LoggingOptions = {}): ClientInterceptor {
  const line = lineWriter(options, 'logClientCalls');
  if (line === undefined) return (next) => next;
  return (next) => (call) => {
    const started = performance.now();
    return observeClientCall(call, next, (error, bytes) => line(call.method, call.metadata, options.peer, started, error, bytes), true);
  };
}

/** A server interceptor logging one line per call this side's services handle, when it ends. */
export function logServerCalls(options: LoggingOptions = {}): ServerInterceptor {
  const line = lineWriter(options, 'logServerCalls');
  if (line === undefined) return (next) => next;
  return (next) => (call) => {
    const started = performance.now();
    const ctx = call.ctx;
    return observeServerCall(call, next, (error, bytes) => line(call.method, ctx.metadata, ctx.peer.nodeName || ctx.peer.address, started, error, bytes), true);
  };
}

type LineWriter = (method: MethodInfo, metadata: Metadata, peer: string | undefined, started: number, error: RpcError | undefined, bytes: number | undefined) => void;

function lineWriter(options: LoggingOptions, name: string): LineWriter | undefined {
  const { logger, okLevel = 'info', metadataKeys = [] } = options;
  if (logger === undefined) return undefined;
  checkLogger(logger, `${name}: logger`);
  if (okLevel !== 'info' && okLevel !== 'debug') throw new TypeError(`${name}: okLevel must be 'info' or 'debug'`);
  const keys = metadataKeys.filter((key) => !SECRET_KEY.test(key)).map((key) => key.toLowerCase());
  const side = name === 'logClientCalls' ? 'client' : 'server';
  return (method, metadata, peer, started, error, bytes) => {
    const status = error === undefined ? 'OK' : statusName(error.code);
    const fields: CallLogLine = { side, method: method.path, kind: method.kind, status, durationMs: Math.round((performance.now() - started) * 1000) / 1000 };
    if (peer !== undefined && peer !== '') fields.peer = peer;
    if (bytes !== undefined) fields.bytes = bytes;
    if (error !== undefined) fields.error = error.rawMessage;
    if (keys.length > 0) {
      const picked: Record<string, string> = {};
      for (const key of keys) {
        const value = metadata[key];
        if (value !== undefined) picked[key] = typeof value === 'string' ? value : `<${value.byteLength} bytes>`;
      }
      fields.metadata = picked;
    }
    const level = error === undefined ? okLevel : SERVER_FAULTS.has(error.code) ? 'error' : 'warn';
    safeLog(logger, level, fields, `${side} call ${method.path} ${status} in ${fields.durationMs} ms`);
  };
}
