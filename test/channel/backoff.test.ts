/**
 * The reconnect backoff of a channel (src/channel/backoff.ts), on its own: full jitter under a doubling cap, the
 * spread after a lost connection, the startup retry period, and option checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, resolveReconnectOptions } from '../../src/channel/backoff.js';

void test('backoff: full jitter under a cap that doubles per failure up to maxDelayMs', () => {
  const options = resolveReconnectOptions({ initialDelayMs: 100, maxDelayMs: 1000, lossSpreadMs: 5000 });
  const top = new Backoff(options, () => 0.999999);
  const caps = Array.from({ length: 6 }, () => Math.round(top.afterFailure()));
  assert.deepEqual(caps, [100, 200, 400, 800, 1000, 1000]);
  const bottom = new Backoff(options, () => 0);
  assert.equal(bottom.afterFailure(), 0, 'full jitter reaches down to 0');
});

void test('backoff: a lost connection is redialed within lossSpreadMs and failures start over', () => {
  const options = resolveReconnectOptions({ initialDelayMs: 100, maxDelayMs: 1000, lossSpreadMs: 5000 });
  const backoff = new Backoff(options, () => 0.999999);
  for (let i = 0; i < 5; i++) backoff.afterFailure();
  assert.equal(Math.round(backoff.afterLoss()), 5000);
  const caps = Array.from({ length: 6 }, () => Math.round(backoff.afterFailure()));
  // the cap starts over after a connection that lasted, but not below half the spread: maxDelayMs bounds it
  assert.deepEqual(caps, [1000, 1000, 1000, 1000, 1000, 1000]);
  const wide = new Backoff(resolveReconnectOptions({ initialDelayMs: 100, maxDelayMs: 30_000, lossSpreadMs: 4000 }), () => 0.999999);
  assert.equal(Math.round(wide.afterFailure()), 100, 'before any loss, failures start at initialDelayMs');
  wide.afterLoss();
  assert.deepEqual(Array.from({ length: 7 }, () => Math.round(wide.afterFailure())), [2000, 2000, 2000, 2000, 2000, 3200, 6400]);
});

void test('backoff: delays drawn with Math.random spread evenly over the window', () => {
  const backoff = new Backoff(resolveReconnectOptions({}, { lossSpreadMs: 5000 }));
  const buckets = new Array<number>(5).fill(0);
  for (let i = 0; i < 10_000; i++) buckets[Math.floor(backoff.afterLoss() / 1000)]!++;
  for (const n of buckets) assert.ok(n > 1700 && n < 2300, `each second of the 5 s spread holds about 20 %: ${buckets.join(', ')}`);
});

void test('backoff: bad options throw a RangeError that names them', () => {
  assert.throws(() => resolveReconnectOptions({ initialDelayMs: -1 }), /initialDelayMs/);
  assert.throws(() => resolveReconnectOptions({ initialDelayMs: 1000, maxDelayMs: 10 }), /maxDelayMs/);
});

void test('backoff: during startupRetryMs, failures before the first connection keep the first cap', () => {
  const backoff = new Backoff(resolveReconnectOptions({ initialDelayMs: 100, maxDelayMs: 10_000, startupRetryMs: 60_000 }), () => 0.999999);
  assert.deepEqual(Array.from({ length: 5 }, () => Math.round(backoff.afterFailure())), [100, 100, 100, 100, 100]);
  backoff.connected();
  assert.deepEqual(Array.from({ length: 3 }, () => Math.round(backoff.afterFailure())), [100, 200, 400], 'once connected, failures grow again');
});
