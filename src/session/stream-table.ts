/**
 * A session's open streams by id: an open-addressed table (linear probing, backward-shift deletion, no tombstones)
 * whose slots hold the streams themselves, the home slot of an id its seeded mix (home()) masked.
 *
 * Why not a Map: every call adds one id and deletes another, so a Map rehashes every few calls, and V8 links each
 * superseded table to its successor (for iterators) and allocates a successor in the old generation once its
 * predecessor lives there. The first table promoted kept every later table, and the streams they had held, alive
 * through each scavenge until the next full collection: at c=64 about 1 KiB per call was promoted, and garbage
 * collection took a third to a half of the caller's CPU. Here a slot is cleared when its stream closes, the array
 * is replaced only when the table grows or shrinks, and a closed stream dies young.
 *
 * Ids are mixed with a per-table secret before masking (home()): sequential ids would fill neighbouring slots without
 * it, but the peer picks its own ids, and ids spaced by the table's size would share one run. A lookup is one probe
 * unless another stream's run covers the id's home (load at most 1/2 keeps the runs short). The table
 * keeps its load at most 1/2 (it doubles past that). It shrinks by half below 1/8, but only past SHRINK_ABOVE slots:
 * the number of calls in flight swings between none and all of them many times a second, and a table that resized
 * with each swing would be the churn this file exists to avoid.
 */
import { randomInt } from 'node:crypto';
import type { Stream } from './stream.js';

/** Slots of an empty table: an idle connection holds this many references, ~300 bytes. */
const MIN_CAPACITY = 32;
/** A table this large or smaller never shrinks (8 KiB of slots): one that held 10 000 idle streams does. */
const SHRINK_ABOVE = 1024;

/** What a reader of the table (stream-frames.ts) may do with it. */
export interface StreamLookup {
  get(id: number): Stream | undefined;
}

export class StreamTable implements StreamLookup {
  private slots: (Stream | undefined)[] = emptySlots(MIN_CAPACITY);
  private mask = MIN_CAPACITY - 1;
  private count = 0;
  /** Secret per table, so a peer cannot pick ids that collide (home()). */
  private readonly seed = randomInt(0x7fff_ffff);

  get size(): number {
    return this.count;
  }

  get(id: number): Stream | undefined {
    const slots = this.slots;
    const mask = this.mask;
    for (let i = this.home(id) & mask; ; i = (i + 1) & mask) {
      const stream = slots[i];
      if (stream === undefined || stream.id === id) return stream;
    }
  }

  /** Adds a stream whose id is not in the table (ids are never reused on a connection). */
  add(stream: Stream): void {
    if ((this.count + 1) * 2 > this.slots.length) this.resize(this.slots.length * 2);
    this.place(stream);
    this.count++;
  }

  /** Removes the stream with `id`; false when there is none. */
  delete(id: number): boolean {
    const slots = this.slots;
    const mask = this.mask;
    let hole = this.home(id) & mask;
    for (;;) {
      const stream = slots[hole];
      if (stream === undefined) return false;
      if (stream.id === id) break;
      hole = (hole + 1) & mask;
    }
    slots[hole] = undefined;
    this.count--;
    // close the gap: a stream further along the run moves back into the hole unless its home lies after the hole
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const stream = slots[j];
      if (stream === undefined) break;
      if (((j - (this.home(stream.id) & mask)) & mask) >= ((j - hole) & mask)) {
        slots[hole] = stream;
        slots[j] = undefined;
        hole = j;
      }
    }
    if (this.count * 8 < slots.length && slots.length > SHRINK_ABOVE) this.resize(slots.length / 2);
    return true;
  }

  /**
   * The streams in the table now, oldest id first (each side's in the order it opened them, as a Map would have kept
   * them), as an array the caller may walk while streams close. For teardown and GOAWAY, never per call.
   */
  values(): Stream[] {
    const out: Stream[] = [];
    for (const stream of this.slots) if (stream !== undefined) out.push(stream);
    return out.sort(byId);
  }

  /**
   * Where an id's run starts, before masking: the id mixed with this table's random seed (murmur3's finaliser). Not the
   * id itself: the peer chooses its stream ids (any increasing sequence), and ids spaced by the table's size would all
   * share one run, making every lookup walk it (thousands of probes per frame with a raised maxConcurrentStreams).
   */
  private home(id: number): number {
    let h = id ^ this.seed;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  private place(stream: Stream): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = this.home(stream.id) & mask;
    while (slots[i] !== undefined) i = (i + 1) & mask;
    slots[i] = stream;
  }

  private resize(capacity: number): void {
    const old = this.slots;
    this.slots = emptySlots(capacity);
    this.mask = capacity - 1;
    for (const stream of old) if (stream !== undefined) this.place(stream);
  }
}

function byId(a: Stream, b: Stream): number {
  return a.id - b.id;
}

/** An array of `n` undefined slots, packed (not holey), so reads stay on V8's fast path. */
function emptySlots(n: number): (Stream | undefined)[] {
  const slots: (Stream | undefined)[] = [];
  for (let i = 0; i < n; i++) slots.push(undefined);
  return slots;
}
