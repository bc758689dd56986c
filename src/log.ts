/**
 * The one logging hook: gridwire logs little (a connection refused for not speaking gridwire, a peer lost, a redial
 * that keeps failing), and only through this function, so an application routes it into its own logger or silences
 * it with `log: () => {}`.
 */
export type LogLevel = 'debug' | 'info' | 'warn';
export type LogFn = (level: LogLevel, message: string) => void;

/** Default: warnings to stderr, one line each; info and debug are dropped. */
export const stderrLog: LogFn = (level, message) => {
  if (level === 'warn') process.stderr.write(`gridwire: ${message}\n`);
};
