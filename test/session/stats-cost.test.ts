/**
 * What counting credit stalls costs a stream: nothing, even after stalls. A stream keeps the times of its stalls
 * (session-counters.ts) and, with inspect on, when it opened; V8 boxes a number field that has ever held a fraction
 * in every object made after that, so fields that started at -1 or 0 made each later stream (each call) 16 bytes
 * larger per field once any stream of the process had stalled. They start undefined instead: a stall boxes only the
 * value it stores.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { creditStallBegins, creditStallEnds, SessionCounters } from '../../src/session/session-counters.js';
import { Stream, type StreamHost, type StreamOutput } from '../../src/session/stream.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap bytes per Stream made now (the median of a few rounds of 100 000, kept alive while measured). */
function bytesPerStream(host: StreamHost): number {
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    gc();
    const before = process.memoryUsage().heapUsed;
    const kept = new Array<Stream>(100_000);
    for (let i = 0; i < kept.length; i++) kept[i] = new Stream(host, undefined as unknown as StreamOutput, 2 * i + 1, true, 65_536, 65_536, 64, 64);
    rounds.push((process.memoryUsage().heapUsed - before) / kept.length);
    kept.length = 0;
  }
  return rounds.sort((a, b) => a - b)[2]!;
}

void test('a stream is no larger after other streams stalled on credit, or were timed by inspect', { timeout: 20_000 }, async () => {
  const counters = new SessionCounters();
  const host = { counters } as unknown as StreamHost;
  const before = bytesPerStream(host);

  // one stream of each kind stores fractions in every time field: a stall, an inspect age, a full receive window
  counters.timeStreams = true;
  const stalled = new Stream(host, undefined as unknown as StreamOutput, 1, true, 65_536, 65_536, 64, 64);
  creditStallBegins(stalled, counters);
  await new Promise((resolve) => setTimeout(resolve, 3));
  creditStallEnds(stalled, counters);
  stalled.receiveFullSince = performance.now();
  assert.ok(!Number.isInteger(stalled.creditBlockedMs!) && !Number.isInteger(stalled.openedAt!), 'the fields hold fractions');
  counters.timeStreams = false;

  const after = bytesPerStream(host);
  assert.ok(after - before < 8, `a stream made after the stall: ${after.toFixed(1)} bytes, before: ${before.toFixed(1)}`);
});
