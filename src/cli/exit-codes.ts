/**
 * The exit codes of every `gridwire` command, one meaning each, so a script can tell "try again later" from "fix
 * your command" from "the data is wrong". docs/CLI.md lists them; `describeError` (errors.ts) picks one for an error.
 */
export const EXIT = {
  /** Everything the command set out to do held (a transfer's digest matched, the demo's checks passed). */
  OK: 0,
  /** The work ran and failed a check: a digest mismatch, a demo check, an error count above zero. */
  FAILED: 1,
  /** The command line is wrong: unknown command or flag, missing argument, malformed address or value. */
  USAGE: 2,
  /** The peer could not be reached or the connection was lost or cut (UNAVAILABLE, DEADLINE_EXCEEDED): retrying may help. */
  UNAVAILABLE: 3,
  /** The peer refused who we are or we refused it: TLS certificate, token, authorization (UNAUTHENTICATED, PERMISSION_DENIED). */
  REFUSED: 4,
  /** The peer is not a compatible gridwire: no common protocol version, TLS against plain, not gridwire at all (FAILED_PRECONDITION). */
  INCOMPATIBLE: 5,
  /** A call reached the peer and returned another error status (NOT_FOUND, UNIMPLEMENTED, INVALID_ARGUMENT, ...). */
  CALL_FAILED: 6,
  /** Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it). */
  INTERRUPTED: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
