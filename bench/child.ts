// What every benchmark worker process does the same way: start only under the orchestrator, report to the parent over
// the fork IPC channel, die with a readable error, and exit even when closing its side hangs.
import type { ChildMsg } from './protocol.js';

const STOP_GRACE_MS = 2000;

export function send(msg: ChildMsg): void {
  process.send?.(msg);
}

export function fail(err: unknown): never {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  send({ t: 'error', message });
  process.exit(1);
}

/** A worker's first step: refuses to run without the fork IPC channel, exits when the orchestrator goes, and reports
 * any uncaught error. `script` names the worker in the refusal, e.g. 'bench/worker.ts'. */
export function initWorker(script: string): void {
  if (process.send === undefined) {
    console.error(`${script} is started by bench/run.ts (it needs the fork IPC channel)`);
    process.exit(2);
  }
  process.on('disconnect', () => process.exit(1)); // the orchestrator is gone: do not linger
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

/** Closes the side, but exits within STOP_GRACE_MS even if closing hangs. */
export async function closeAndExit(close: () => Promise<void>): Promise<never> {
  setTimeout(() => process.exit(0), STOP_GRACE_MS).unref();
  await close().catch(() => undefined);
  process.exit(0);
}
