/**
 * The write scheduler (src/session/scheduler.ts) while the transport asks us to wait: a peer that reads nothing and
 * opens and cancels calls at line rate left every closed stream in the scheduler's list until a turn came, which it
 * never does (RSS +150 MiB in 3 s against a default listen()). Closed streams are now dropped whenever a list doubles.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StreamScheduler } from '../../src/session/scheduler.js';
import type { Stream } from '../../src/session/stream.js';

/** The two fields the scheduler reads of a stream that is never given a turn. */
function fakeStream(closed: boolean): Stream {
  return { scheduled: false, closed } as unknown as Stream;
}

void test('T-D2 streams that close while queued behind a blocked transport do not pile up in the write scheduler: the list stays within twice the open streams (plus 1 024)', () => {
  const scheduler = new StreamScheduler();
  const open: Stream[] = [];
  for (let i = 0; i < 100; i++) {
    const stream = fakeStream(false);
    open.push(stream);
    scheduler.add(stream);
  }
  for (let i = 0; i < 100_000; i++) {
    const stream = fakeStream(false);
    scheduler.add(stream);
    (stream as { closed: boolean }).closed = true; // the peer's RESET arrives: the stream closes while queued
  }
  assert.ok(scheduler.size <= 2 * 100 + 1024, `${scheduler.size} streams kept for 100 open ones`);
  for (const stream of open) assert.equal(stream.scheduled, true, 'an open stream keeps its place');
});
