/**
 * What a unary call leaves for the garbage collector: a finished call's objects must die young, in the scavenges
 * that cost next to nothing, and never reach the old generation, which only a full (mark-compact) collection empties.
 * A Map-based stream table broke this: V8 links every superseded hash table to its successor, so once one was
 * promoted the chain kept each later table and the streams they held alive through scavenges; at c=64 about 1 KiB
 * per call was promoted, a full collection ran every ~10 000 calls, and GC took a third to a half of the caller's CPU.
 */
import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { test } from 'node:test';

import { createMemoryPair, createSession, defineService, serve, unary } from '../../src/index.js';

const Bytes = defineService('test.GarbageEcho', { echo: unary<Uint8Array, Uint8Array>({ codec: 'raw' }) });

void test('finished unary calls die young: 100 000 calls at c=64 (both ends in this process) need no full collection', async (t) => {
  const [a, b] = createMemoryPair();
  const server = createSession(b, 'acceptor', { services: [serve(Bytes, { echo: (r) => r })] });
  const session = createSession(a, 'dialer', {});
  t.after(() => {
    session.destroy();
    server.destroy();
  });
  await session.ready;
  const client = session.client(Bytes);
  const request = new Uint8Array(32);
  async function calls(n: number): Promise<void> {
    let left = n;
    const lane = async (): Promise<void> => {
      while (left-- > 0) await client.echo(request);
    };
    await Promise.all(Array.from({ length: 64 }, lane));
  }
  await calls(10_000); // optimised code, and the tables at their working size
  const full: string[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number; flags?: number } })[]) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full.push(`${entry.duration.toFixed(1)} ms`);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  t.after(() => observer.disconnect());
  await calls(100_000);
  await new Promise((resolve) => setImmediate(resolve)); // the observer hears of GCs asynchronously
  // the Map-based table promoted ~100 MiB here: several full collections (each emptied what the last scavenges promoted)
  assert.ok(full.length <= 1, `100 000 calls needed ${full.length} full collections (${full.join(', ')})`);
});
