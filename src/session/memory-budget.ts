/**
 * A memory budget shared by many connections: bytes reserved and released, refused past a limit. Every session
 * reserves from one (the process's default unless given another) what its peer makes it hold beyond a frame in
 * transit: partly received messages and bytes queued to send, so that a server with thousands of peers never promises
 * each of them its per-connection budgets at once. Knows nothing of sessions, streams or frames: only bytes.
 */
import { getHeapStatistics } from 'node:v8';

/** Of the V8 heap limit, the part the default process-wide budget may hold (a quarter: ~1 GiB for a 4 GiB heap). */
const DEFAULT_HEAP_FRACTION = 0.25;

/** Bytes that many connections may hold at once; `tryReserve` refuses past `limitBytes`. */
export class MemoryBudget {
  private usedBytes = 0;

  constructor(readonly limitBytes: number) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) {
      throw new RangeError(`a MemoryBudget's limit must be an integer number of bytes in 0..2^53-1, got ${limitBytes}`);
    }
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.usedBytes;
  }

  /** Reserves `bytes` (>= 0); false, reserving nothing, when they would pass the limit. */
  tryReserve(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    return true;
  }

  /** Gives back `bytes` reserved earlier. */
  release(bytes: number): void {
    this.usedBytes -= bytes;
  }
}

let processBudget: MemoryBudget | undefined;
/** Budgets given as a number, one per limit: every session given the same number shares it. */
const budgetsByLimit = new Map<number, MemoryBudget>();

/** The process's default budget: a quarter of the V8 heap limit, made on first use and shared by every session. */
export function defaultMemoryBudget(): MemoryBudget {
  return (processBudget ??= new MemoryBudget(Math.floor(getHeapStatistics().heap_size_limit * DEFAULT_HEAP_FRACTION)));
}

/**
 * The budget a session's resolved `memoryBudget` option names: that instance, or for a number the one budget of that many bytes in this process (a listener's sessions each resolve the option anew, and
 * must still share one budget).
 */
export function memoryBudgetOf(option: MemoryBudget | number): MemoryBudget {
  if (option instanceof MemoryBudget) return option;
  let budget = budgetsByLimit.get(option);
  if (budget === undefined) budgetsByLimit.set(option, (budget = new MemoryBudget(option)));
  return budget;
}
