/**
 * The logger the provided interceptors write to: the shape of pino's (and bunyan's, and most structured loggers'),
 * `logger.info(obj, msg)`, so an application passes its own logger unchanged. gridwire's own `log` option (log.ts)
 * stays a plain function; this is only for the interceptors, whose lines carry fields.
 */

/** One level of a structured logger: an object of fields, then an optional message. */
export type LogMethod = (obj: object, msg?: string) => void;

/** A pino-compatible logger: `{ debug, info, warn, error }`, each `(obj, msg?)`; `child(bindings)` is optional. */
export interface Logger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  child?(bindings: Record<string, unknown>): Logger;
}

/** Throws a TypeError naming `option` unless `logger` has the four level methods. */
export function checkLogger(logger: unknown, option: string): asserts logger is Logger {
  const l = logger as Partial<Record<string, unknown>> | null;
  if (l === null || typeof l !== 'object' || !['debug', 'info', 'warn', 'error'].every((level) => typeof l[level] === 'function')) {
    throw new TypeError(`${option} must be a logger with debug, info, warn and error methods, each (obj, msg?) (pino's shape)`);
  }
}

/** Calls the logger, swallowing what it throws: a broken logger must not fail a call. */
export function safeLog(logger: Logger, level: 'debug' | 'info' | 'warn' | 'error', obj: object, msg: string): void {
  try {
    logger[level](obj, msg);
  } catch {
    // a logger that throws is the application's bug; the call goes on
  }
}

/** The default of exceptionRecovery's logger: the error line (with its stack) on stderr, the other levels dropped. */
export const stderrLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error(obj, msg) {
    const err = (obj as { err?: unknown }).err;
    const stack = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`gridwire: ${msg ?? ''} ${JSON.stringify({ ...obj, err: undefined })}\n${stack}\n`);
  },
};
