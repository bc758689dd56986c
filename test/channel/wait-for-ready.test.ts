/**
 * waitForReady on a channel: a call made before the server exists waits for it (and a stream too), while fail-fast
 * calls in backoff fail UNAVAILABLE retry-safe at once; and a waiting call abandoned before any server exists (a
 * serverStream, a download, a bidi without a deadline) never reaches a handler once the server is up.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Status } from '../../src/index.js';
import { openChannel, startServer, unixUrl } from '../fixtures/connections.js';
import { Counted, countedService } from '../fixtures/counted-service.js';
import { Svc, svcService } from '../fixtures/mesh-service.js';
import { assertStatus, errorOf, rejectsWithStatus, sleep, until, within } from '../helpers.js';

void describe('reconnect: waiting for a server', () => {
  void test('T-X5 a waitForReady call made before the server exists succeeds once it listens 300 ms later; fail-fast calls in backoff fail UNAVAILABLE retrySafe at once', { timeout: 10_000 }, async (t) => {
    const url = unixUrl(t);
    const ch = openChannel(t, url);
    const states: string[] = [];
    ch.on('state', (e) => states.push(e.state));
    const client = ch.client(Svc);
    const start = performance.now();
    const waiting = client.whoami('early', { waitForReady: true, timeoutMs: 5000 });
    const waitingStream = client.ticks({ count: 3 }, { waitForReady: true, timeoutMs: 5000 });
    const collected = (async () => {
      const got: number[] = [];
      for await (const n of waitingStream) got.push(n);
      return got;
    })();

    await until(() => ch.state === 'backoff', 2000, 'the channel in backoff (nothing listens yet)');
    const failStart = performance.now();
    const error = await rejectsWithStatus(client.whoami('fail-fast'), Status.UNAVAILABLE, 'a fail-fast call in backoff');
    assert.ok(performance.now() - failStart < 50, `at once (${(performance.now() - failStart).toFixed(1)} ms)`);
    assert.equal(error.retrySafe, true, 'never sent, so retry-safe');
    assert.match(error.message, /not connected/);
    const streamError = await errorOf(async () => {
      for await (const n of client.ticks({ count: 1 })) void n;
    });
    assertStatus(streamError, Status.UNAVAILABLE, 'a fail-fast stream in backoff');
    assert.equal(streamError.retrySafe, true);
    // a waitForReady call whose deadline passes first
    await rejectsWithStatus(client.whoami('too short', { waitForReady: true, timeoutMs: 100 }), Status.DEADLINE_EXCEEDED, 'a short waitForReady');

    const elapsed = performance.now() - start;
    await sleep(Math.max(0, 300 - elapsed));
    const listenedAt = performance.now();
    await startServer(t, { services: [svcService('late')] }, url);
    const answer = await within(waiting, 3000, 'the waiting call');
    assert.equal(answer.node, 'late');
    assert.ok(performance.now() - start >= 300, 'it could only succeed after the server started');
    assert.deepEqual(await within(collected, 3000, 'the waiting stream'), [0, 1, 2]);
    // FAST backoff caps the redial delay at 200 ms
    assert.ok(performance.now() - listenedAt < 1000, `connected ${(performance.now() - listenedAt).toFixed(0)} ms after the server started`);
    assert.equal(ch.state, 'ready');
    assert.ok(states.includes('backoff') && states.includes('connecting') && states.at(-1) === 'ready', `states: ${states.join(',')}`);
    assert.equal((await client.whoami('now')).node, 'late', 'fail-fast calls work once connected');
  });
});

void describe('waitForReady: abandoned calls', () => {
  // Regression found by review (fixed in 0e3bab8: a call abandoned while waiting for a connection is never sent).
  void test('a waitForReady serverStream and download abandoned (return()) before any server exists never reach a handler once the server is up', { timeout: 6000 }, async (t) => {
    const url = unixUrl(t);
    const ch = openChannel(t, url);
    const client = ch.client(Counted);
    const ticks = client.ticks(null, { waitForReady: true });
    const bytes = client.get(null, { waitForReady: true });
    assert.deepEqual(await within(ticks.return(), 1000, 'ticks.return()'), { done: true, value: undefined });
    assert.deepEqual(await within(bytes.return(), 1000, 'get.return()'), { done: true, value: undefined });

    const counts: Record<string, number> = {};
    await startServer(t, { services: [countedService(counts)] }, url);
    await within(ch.whenReady(), 2000, 'the channel to connect');
    await sleep(500);
    assert.deepEqual(counts, {}, 'no handler ran for the abandoned calls');
    // the server does serve: a call made now reaches it
    const got: number[] = [];
    for await (const n of client.ticks(null, { timeoutMs: 1000 })) got.push(n);
    assert.deepEqual([got, counts], [[1, 2], { ticks: 1 }]);
  });

  // Regression found by review (fixed in 0e3bab8: a call abandoned while waiting for a connection is never sent).
  void test('a waitForReady bidi without a deadline abandoned before any server exists: return() resolves at once, and the handler never runs once the server is up', { timeout: 6000 }, async (t) => {
    const url = unixUrl(t);
    const ch = openChannel(t, url);
    const call = ch.client(Counted).chat({ waitForReady: true });
    const returned = await within(call.return(), 500, 'return() of a bidi waiting for a connection');
    assert.equal(returned.done, true);

    const counts: Record<string, number> = {};
    await startServer(t, { services: [countedService(counts)] }, url);
    await within(ch.whenReady(), 2000, 'the channel to connect');
    await sleep(500);
    assert.deepEqual(counts, {}, 'the abandoned bidi never reached its handler');
  });
});
