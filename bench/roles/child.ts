// What every role of the worker process does the same way: report to the orchestrator over the fork IPC channel,
// die with a readable error, exit even when closing its side hangs, and read its own memory.
import type { ChildMsg, MemorySample } from '../messages.js';

const STOP_GRACE_MS = 2000;

export function send(msg: ChildMsg): void {
  process.send?.(msg);
}

export function fail(err: unknown): never {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  send({ t: 'error', message });
  process.exit(1);
}

/** Closes the side, but exits within STOP_GRACE_MS even if closing hangs. */
export async function closeAndExit(close: () => Promise<void>): Promise<never> {
  setTimeout(() => process.exit(0), STOP_GRACE_MS).unref();
  await close().catch(() => undefined);
  process.exit(0);
}

const collectGarbage = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

function memoryUsage(): MemorySample {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heapTotal, heapUsed, external, arrayBuffers };
}

/** process.memoryUsage(); started with --expose-gc, after a collection, so it shows what is retained. */
export function sampleMemory(): MemorySample {
  collectGarbage();
  return memoryUsage();
}

/** Memory after three full collections 20 ms apart (with --expose-gc): what a process holding connections retains. */
export async function settledMemory(): Promise<MemorySample> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return memoryUsage();
}

/** Milliseconds since the epoch with sub-ms resolution, comparable between processes on this machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();
