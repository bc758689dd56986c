/**
 * One error, one line for a human, one object for `--json`, one exit code: what every command prints when it fails.
 * A command throws; `main.ts` (or the command itself, to keep going) turns the error into this.
 */
import { RpcError } from '../rpc/rpc-error.js';
import { Status, statusName } from '../wire/constants.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import { UsageError } from './command.js';

export interface ErrorReport {
  readonly exitCode: ExitCode;
  /** One line, no stack: what failed and, where we know it, what to do. */
  readonly message: string;
  /** The gRPC-style status name when the error came from a call or a connection (`UNAVAILABLE`, ...). */
  readonly status?: string;
}

/** The exit code a status means (see exit-codes.ts). */
export function exitCodeForStatus(code: number): ExitCode {
  switch (code) {
    case Status.OK: return EXIT.OK;
    case Status.UNAVAILABLE:
    case Status.DEADLINE_EXCEEDED: return EXIT.UNAVAILABLE;
    case Status.UNAUTHENTICATED:
    case Status.PERMISSION_DENIED: return EXIT.REFUSED;
    case Status.FAILED_PRECONDITION: return EXIT.INCOMPATIBLE;
    case Status.CANCELLED: return EXIT.INTERRUPTED;
    default: return EXIT.CALL_FAILED;
  }
}

export function describeError(error: unknown): ErrorReport {
  if (error instanceof UsageError) return { exitCode: EXIT.USAGE, message: `${error.message} (see --help)` };
  // a malformed address or option: connect() and listen() throw these before dialing
  if (error instanceof TypeError || error instanceof RangeError) return { exitCode: EXIT.USAGE, message: error.message };
  if (error instanceof RpcError) {
    return { exitCode: exitCodeForStatus(error.code), message: `${statusName(error.code)}: ${error.rawMessage}`, status: statusName(error.code) };
  }
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'EEXIST') {
    return { exitCode: EXIT.USAGE, message: (error as Error).message };
  }
  return { exitCode: EXIT.FAILED, message: error instanceof Error ? error.message : String(error) };
}

/** Prints a failure: a JSON object on stdout under `--json` (scripts read one place), else one line on stderr. */
export function printError(report: ErrorReport, io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream }, json: boolean): void {
  if (json) io.stdout.write(`${JSON.stringify({ ok: false, error: report.message, status: report.status, exitCode: report.exitCode })}\n`);
  else io.stderr.write(`gridwire: ${report.message}\n`);
}
