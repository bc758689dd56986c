/**
 * What every `gridwire` command is: a name, one line of summary, its usage text, and `run(args, io)` returning the
 * process's exit code. Commands write only through `io` (never `process.stdout` directly), so a test runs them in
 * process or as a child the same way, and `--json` output is never interleaved with human text.
 */
import type { Readable, Writable } from 'node:stream';

/** Where a command reads and writes: the process's streams in `main.ts`, anything in a test. */
export interface CliIo {
  readonly stdin: Readable;
  readonly stdout: Writable & { isTTY?: boolean; columns?: number };
  readonly stderr: Writable & { isTTY?: boolean; columns?: number };
  readonly env: NodeJS.ProcessEnv;
  /** Aborted on SIGINT/SIGTERM: a command stops its work, closes what it opened, and returns EXIT.INTERRUPTED. */
  readonly signal: AbortSignal;
}

export interface CliCommand {
  readonly name: string;
  /** One line for `gridwire --help`. */
  readonly summary: string;
  /** The full text for `gridwire <name> --help`: synopsis, flags, examples, exit codes that differ from the common ones. */
  readonly usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

/** A mistake in the command line itself (unknown flag, missing argument, malformed value): exit 2 with the usage hint. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
