/**
 * Retiring healthy connections on the accepting side (gRFC A9, session/lifetime.ts): maxConnectionIdleMs closes a
 * connection that has had no stream for that long, maxConnectionAgeMs one that is that old (+- 10 % jitter, T-X6: so
 * connections made together do not all retire together), each with a graceful GOAWAY NO_ERROR whose message says why
 * ("idle", "max connection age"), calls in flight finishing within maxConnectionAgeGraceMs. Over the in-memory pair;
 * channels and meshes across a retirement are in test/channel/retired-connection.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Status } from '../../src/index.js';
import { resolveSessionOptions } from '../../src/session/options.js';
import { AGE_JITTER, jitteredAgeMs } from '../../src/session/lifetime.js';
import { RetireReason } from '../../src/wire/constants.js';
import { memoryRpcPair } from '../fixtures/connections.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { deferred, rejectsWithStatus, sleep, within } from '../helpers.js';

/** Resolves with the ms from now until `session` stops taking calls. */
async function msUntilGoingAway(session: { goingAway: Promise<void> }, limitMs: number): Promise<number> {
  const started = performance.now();
  await within(session.goingAway, limitMs, 'the session to go away');
  return performance.now() - started;
}

void describe('maxConnectionIdleMs', () => {
  void test('an acceptor whose connection has had no stream for maxConnectionIdleMs retires it: GOAWAY NO_ERROR "idle", a clean close on both sides', async (t) => {
    const { caller, callee } = await memoryRpcPair(t, {}, { services: [echoService()], maxConnectionIdleMs: 200 });
    assert.deepEqual(await caller.client(Echo).echo(1), 1);
    const tookMs = await msUntilGoingAway(caller, 2_000);
    assert.ok(tookMs >= 190 && tookMs <= 1.25 * 200 + 200, `retired after ${tookMs.toFixed(0)} ms; limit 200, checked 4 times per limit`);
    assert.equal(caller.goawayReason, RetireReason.IDLE);
    assert.equal(await within(caller.closed, 2_000, 'caller closed'), undefined, 'a clean close, not an error');
    assert.equal(await within(callee.closed, 2_000, 'callee closed'), undefined);
  });

  void test('streams keep the connection: a call longer than the limit, then calls every 50 ms, and only then idle', async (t) => {
    const gate = deferred();
    const { caller } = await memoryRpcPair(t, {}, { services: [echoService({ gate: gate.promise })], maxConnectionIdleMs: 150 });
    const echo = caller.client(Echo);
    const long = echo.gated('long');
    await sleep(400);
    assert.ok(caller.acceptsCalls, 'a call in progress is not idle');
    gate.resolve();
    assert.equal(await long, 'done long');
    // streams that come and go between two checks: the ids used show them even when the table is empty at each check
    for (let i = 0; i < 10; i++) {
      await echo.echo(i);
      await sleep(50);
    }
    assert.ok(caller.acceptsCalls, 'a call every 50 ms is not idle');
    await msUntilGoingAway(caller, 1_000);
    assert.equal(caller.goawayReason, RetireReason.IDLE);
  });

  void test('a call that crosses the idle GOAWAY fails UNAVAILABLE retry-safe, its handler never run: a channel retries it', async (t) => {
    let started = 0;
    const { caller, callee } = await memoryRpcPair(t, {}, { services: [echoService({ onStart: () => started++ })], maxConnectionIdleMs: 100 });
    // the callee has just retired the connection; its GOAWAY reaches the caller in a later turn, after this OPEN left
    const crossing = within(callee.goingAway, 1_000, 'the idle retirement').then(() => caller.client(Echo).gated('crossing'));
    const error = await rejectsWithStatus(crossing, Status.UNAVAILABLE);
    assert.equal(error.retrySafe, true, error.message);
    assert.match(error.message, /was not processed/, 'the OPEN left before the GOAWAY arrived, and the GOAWAY says it was not taken');
    assert.equal(started, 0, 'the handler never ran');
    assert.equal(await within(callee.closed, 3_000, 'callee closed'), undefined);
  });

  void test('the dialing side ignores maxConnectionIdleMs and maxConnectionAgeMs: they retire what a listener accepted', async (t) => {
    const { caller } = await memoryRpcPair(t, { maxConnectionIdleMs: 50, maxConnectionAgeMs: 50 }, { services: [echoService()] });
    await sleep(300);
    assert.ok(caller.acceptsCalls);
    assert.deepEqual(await caller.client(Echo).echo('still'), 'still');
  });
});

void describe('maxConnectionAgeMs', () => {
  void test('T-X6 max connection age: the acceptor retires the connection with GOAWAY NO_ERROR "max connection age"; a call in flight finishes in the grace, new ones go elsewhere', async (t) => {
    const gate = deferred();
    const { caller, callee } = await memoryRpcPair(t, {}, { services: [echoService({ gate: gate.promise })], maxConnectionAgeMs: 200, maxConnectionAgeGraceMs: 5_000 });
    const inFlight = caller.client(Echo).gated('in flight');
    const tookMs = await msUntilGoingAway(caller, 2_000);
    assert.ok(tookMs >= 200 * (1 - AGE_JITTER) - 20 && tookMs <= 200 * (1 + AGE_JITTER) + 200, `retired after ${tookMs.toFixed(0)} ms`);
    assert.equal(caller.goawayReason, RetireReason.MAX_AGE);
    const refused = await rejectsWithStatus(caller.client(Echo).echo('late'), Status.UNAVAILABLE);
    assert.equal(refused.retrySafe, true, 'a new call is safe to send elsewhere');
    await sleep(100);
    gate.resolve();
    assert.equal(await inFlight, 'done in flight');
    assert.equal(await within(callee.closed, 2_000, 'callee closed'), undefined, 'a clean close once the call finished');
  });

  void test('T-X6 max connection age: a call still running when maxConnectionAgeGraceMs runs out fails UNAVAILABLE', async (t) => {
    const { caller } = await memoryRpcPair(t, {}, { services: [echoService()], maxConnectionAgeMs: 100, maxConnectionAgeGraceMs: 150 });
    const started = performance.now();
    const error = await rejectsWithStatus(within(caller.client(Echo).hang(null), 2_000, 'the hanging call'), Status.UNAVAILABLE);
    const tookMs = performance.now() - started;
    assert.ok(tookMs >= 100 * (1 - AGE_JITTER) + 150 - 20, `failed after ${tookMs.toFixed(0)} ms, before age + grace`);
    assert.equal(error.retrySafe, false, 'the handler ran: not safe to retry');
  });

  void test('T-X6 max connection age holds after the peer\'s own GOAWAY: a dialer that says it is closing but keeps a call open is still retired after age + grace', async (t) => {
    const { caller } = await memoryRpcPair(t, {}, { services: [echoService()], maxConnectionAgeMs: 100, maxConnectionAgeGraceMs: 150 });
    const hanging = caller.client(Echo).hang(null);
    await sleep(10); // the call is open on both sides
    void caller.close({ graceMs: 30_000 }); // our GOAWAY NO_ERROR: the acceptor drains, and would wait 30 s for the call
    await rejectsWithStatus(within(hanging, 2_000, 'the hanging call'), Status.UNAVAILABLE);
  });

  void test('T-X6 max connection age jitter: each connection draws its age uniformly within +-10 %', () => {
    assert.equal(jitteredAgeMs(1_000, () => 0), 900);
    assert.equal(jitteredAgeMs(1_000, () => 0.5), 1_000);
    assert.equal(jitteredAgeMs(1_000, () => 1), 1_100);
    const ages = Array.from({ length: 2_000 }, () => jitteredAgeMs(60_000));
    assert.ok(ages.every((age) => age >= 54_000 && age <= 66_000), 'within +-10 %');
    // spread, not in step: a tenth of the range holds about a tenth of the connections, never a crowd
    const buckets = new Array<number>(10).fill(0);
    for (const age of ages) buckets[Math.min(9, Math.floor((age - 54_000) / 1_200))]!++;
    assert.ok(Math.max(...buckets) < 0.2 * ages.length, `buckets ${buckets.join(' ')}`);
    assert.ok(Math.min(...buckets) > 0.05 * ages.length, `buckets ${buckets.join(' ')}`);
  });

  void test('T-X6 max connection age jitter: 20 connections made together retire at different times', async (t) => {
    const pairs = await Promise.all(Array.from({ length: 20 }, () => memoryRpcPair(t, {}, { maxConnectionAgeMs: 1_000 })));
    const started = performance.now();
    const at = await Promise.all(pairs.map(({ callee }) => within(callee.goingAway, 3_000, 'retirement').then(() => performance.now() - started)));
    const spread = Math.max(...at) - Math.min(...at);
    assert.ok(Math.min(...at) >= 900 - 30 && Math.max(...at) <= 1_100 + 300, `retired at ${at.map((ms) => ms.toFixed(0)).join(', ')} ms`);
    assert.ok(spread >= 60, `20 ages drawn within 900..1100 ms should spread over more than 60 ms, got ${spread.toFixed(0)}`);
  });
});

void test('time-limit options: defaults, and a RangeError naming the option outside its range', () => {
  const o = resolveSessionOptions({});
  assert.deepEqual(
    [o.frameTimeoutMs, o.maxConnectionIdleMs, o.maxConnectionAgeMs, o.maxConnectionAgeGraceMs],
    [30_000, 0, 0, 10_000],
  );
  for (const name of ['frameTimeoutMs', 'maxConnectionIdleMs', 'maxConnectionAgeMs', 'maxConnectionAgeGraceMs'] as const) {
    for (const bad of [-1, 1.5, NaN, 2 ** 31]) assert.throws(() => resolveSessionOptions({ [name]: bad }), new RegExp(`${name}.* must be an integer`), `${name}: ${bad}`);
  }
  assert.throws(() => resolveSessionOptions({ frameTimeoutMs: Infinity }), /frameTimeoutMs must be an integer/);
  assert.equal(resolveSessionOptions({ maxConnectionAgeGraceMs: Infinity }).maxConnectionAgeGraceMs, Infinity);
  assert.equal(resolveSessionOptions({ frameTimeoutMs: 0 }).frameTimeoutMs, 0);
});
