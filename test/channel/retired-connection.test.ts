/**
 * Channels and meshes across a connection their peer retires (maxConnectionIdleMs, maxConnectionAgeMs: GOAWAY NO_ERROR
 * "idle" / "max connection age", session/lifetime.ts): the link redials at once instead of waiting out a loss's
 * backoff, calls in flight finish on the old connection within the grace, calls started meanwhile wait for the new one
 * (or are retried on it when they crossed the GOAWAY), and nothing is logged above info. T-X6's max-age half: with
 * the default reconnect options (a loss waits up to 10 s) every call below would otherwise fail fast for seconds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { RpcSession } from '../../src/index.js';
import { openChannel, startMesh, startServer } from '../fixtures/connections.js';
import { Svc, svcService } from '../fixtures/mesh-service.js';
import { sleep, socketPath, within } from '../helpers.js';

type SvcClient = ReturnType<RpcSession['client']> & { sleep(ms: number): Promise<unknown>; whoami(s: string): Promise<unknown> };

/** Runs `loops` callers for `ms`: even ones make calls that last 100-450 ms (in flight at a retirement), odd ones quick calls. */
async function callFor(client: SvcClient, ms: number, loops: number, seen?: () => void): Promise<{ calls: number; failures: string[] }> {
  const endAt = performance.now() + ms;
  let calls = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      while (performance.now() < endAt) {
        seen?.();
        try {
          await (i % 2 === 0 ? client.sleep(100 + 50 * i) : client.whoami(`loop ${i}`));
          calls++;
        } catch (error) {
          failures.push(String(error));
        }
        if (i % 2 === 1) await sleep(5);
      }
    }),
  );
  return { calls, failures };
}

void describe('a retired connection', () => {
  void test('T-X6 max connection age: a channel keeps working across age-outs with calls in flight; none fails, nothing logged above info', { timeout: 30_000 }, async (t) => {
    let accepted = 0;
    const { server, logs } = await startServer(t, {
      services: [svcService('server')],
      maxConnectionAgeMs: 1_500, // above the 1 s under which a lost connection counts as a failed dial
      maxConnectionAgeGraceMs: 5_000,
      onSession: () => accepted++,
    });
    const channelLogs: string[] = [];
    // the default reconnect options: a lost connection would be redialed 0-10 s later
    const ch = openChannel(t, server.url, { reconnect: {}, log: (level, message) => channelLogs.push(`${level} ${message}`) });
    await ch.whenReady({ timeoutMs: 3_000 });
    const sessions = new Set<RpcSession>();
    const { calls, failures } = await callFor(ch.client(Svc) as unknown as SvcClient, 4_500, 8, () => ch.session && sessions.add(ch.session));
    assert.deepEqual(failures.slice(0, 3), [], `${failures.length} of ${calls + failures.length} calls failed`);
    assert.ok(accepted >= 3, `4.5 s at a max age of 1.5 s +- 10 % makes at least 3 connections, the server accepted ${accepted}`);
    assert.ok(sessions.size >= 3, `the channel used ${sessions.size} connections`);
    assert.deepEqual(logs.filter((l) => l.level === 'warn'), [], 'the server logged no warning');
    assert.deepEqual(channelLogs.filter((l) => !l.startsWith('info') && !l.startsWith('debug')), [], 'the channel logged no warning');
    assert.ok(channelLogs.some((l) => l.includes('max connection age')), `the channel says why it reconnected: ${channelLogs.join(' | ')}`);
  });

  void test('maxConnectionIdleMs: a channel idled out by its server reconnects at once; its next calls succeed', { timeout: 20_000 }, async (t) => {
    let accepted = 0;
    const { server, logs } = await startServer(t, { services: [svcService('server')], maxConnectionIdleMs: 1_200, onSession: () => accepted++ });
    const channelLogs: string[] = [];
    const ch = openChannel(t, server.url, { reconnect: {}, log: (level, message) => channelLogs.push(`${level} ${message}`) });
    const svc = ch.client(Svc);
    await ch.whenReady({ timeoutMs: 3_000 });
    const first = ch.session;
    await svc.whoami('before');
    await within(first!.goingAway, 2_000, 'the idle retirement');
    for (let i = 0; i < 5; i++) {
      await svc.whoami(`after ${i}`); // fail-fast: no waitForReady
      await sleep(20);
    }
    assert.notEqual(ch.session, first);
    assert.ok(accepted >= 2);
    assert.deepEqual(logs.filter((l) => l.level === 'warn'), []);
    assert.deepEqual(channelLogs.filter((l) => l.startsWith('warn')), []);
  });

  void test('T-X6 max connection age: two mesh nodes retiring their connections keep calling each other both ways; none fails', { timeout: 30_000 }, async (t) => {
    const urls = { a: `unix://${socketPath()}`, b: `unix://${socketPath()}` };
    const logs: string[] = [];
    const options = { maxConnectionAgeMs: 1_500, maxConnectionAgeGraceMs: 5_000, fallbackDialAfterMs: 1_000 };
    const a = await startMesh(t, { name: 'a', listen: urls.a, peers: { b: urls.b }, services: [svcService('a')], ...options }, logs);
    const b = await startMesh(t, { name: 'b', listen: urls.b, peers: { a: urls.a }, services: [svcService('b')], ...options }, logs);
    await within(Promise.all([a.peer('b').whenReady(), b.peer('a').whenReady()]), 3_000, 'the pair to connect');
    const [fromA, fromB] = await Promise.all([
      callFor(a.peer('b').client(Svc) as unknown as SvcClient, 4_500, 4),
      callFor(b.peer('a').client(Svc) as unknown as SvcClient, 4_500, 4),
    ]);
    assert.deepEqual([...fromA.failures, ...fromB.failures].slice(0, 3), [], `a: ${fromA.failures.length} of ${fromA.calls}, b: ${fromB.failures.length} of ${fromB.calls} failed`);
    assert.deepEqual(logs.filter((l) => l.startsWith('warn')), []);
    assert.ok(logs.filter((l) => l.includes('connection lost')).length >= 2, `the connection was retired: ${logs.join(' | ')}`);
  });
});
