/**
 * The memory budgets one by one (connection-memory.ts, memory-budget.ts, reassembly.ts, send-queue.ts): what a
 * partly received message and a queued send are charged, that every reservation goes back, the process-wide budget
 * shared by connections, the options' ranges, and the unary response that does not fit (RESOURCE_EXHAUSTED).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getHeapStatistics } from 'node:v8';

import fc from 'fast-check';

import { createMemoryPair, createSession, defineService, MemoryBudget, serve, Status, unary } from '../../src/index.js';
import { ConnectionMemory } from '../../src/session/connection-memory.js';
import { defaultMemoryBudget, memoryBudgetOf } from '../../src/session/memory-budget.js';
import { resolveSessionOptions } from '../../src/session/options.js';
import { BLOCK_OVERHEAD_BYTES, Reassembly, reassemblyChargeOf } from '../../src/session/reassembly.js';
import { Bytes, bytesService } from '../fixtures/bytes-service.js';
import { deferred, rejectsWithStatus, sleep, within } from '../helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function memory(maxReassemblyBytes = 32 * MiB, maxQueuedSendBytes = 32 * MiB, processBytes = 1024 * MiB): ConnectionMemory {
  return new ConnectionMemory({ maxReassemblyBytes, maxQueuedSendBytes, connectionWindow: 0 }, new MemoryBudget(processBytes));
}

void describe('memory budgets', () => {
  void test('MemoryBudget reserves up to its limit, refuses past it without reserving, and takes releases back', () => {
    const budget = new MemoryBudget(100);
    assert.equal(budget.tryReserve(60), true);
    assert.equal(budget.tryReserve(41), false);
    assert.equal(budget.used, 60);
    assert.equal(budget.tryReserve(40), true);
    budget.release(100);
    assert.equal(budget.used, 0);
    assert.throws(() => new MemoryBudget(-1), RangeError);
    assert.throws(() => new MemoryBudget(1.5), RangeError);
  });

  void test('the default process budget is a quarter of the V8 heap limit, one instance; a number names one shared budget', () => {
    assert.equal(defaultMemoryBudget().limitBytes, Math.floor(getHeapStatistics().heap_size_limit / 4));
    assert.equal(resolveSessionOptions().memoryBudget, defaultMemoryBudget());
    assert.equal(memoryBudgetOf(12_345), memoryBudgetOf(12_345), 'every session given the same number shares one budget');
    const own = new MemoryBudget(5);
    assert.equal(memoryBudgetOf(resolveSessionOptions({ memoryBudget: own }).memoryBudget), own);
  });

  void test('options: defaults and ranges of maxQueuedSendBytes, memoryBudget, maxBlockedWriteFrames, maxBlockedWriteBytes, writeStallTimeoutMs', () => {
    const o = resolveSessionOptions();
    assert.equal(o.maxQueuedSendBytes, 32 * MiB);
    assert.equal(resolveSessionOptions({ maxMessageBytes: 64 * MiB }).maxQueuedSendBytes, 128 * MiB, 'follows maxMessageBytes');
    assert.equal(o.maxBlockedWriteFrames, 1000);
    assert.equal(o.maxBlockedWriteBytes, 4 * MiB);
    assert.equal(o.writeStallTimeoutMs, 60_000);
    assert.equal(resolveSessionOptions({ writeStallTimeoutMs: 0 }).writeStallTimeoutMs, 0, '0 disables');
    for (const bad of [
      { maxQueuedSendBytes: -1 },
      { memoryBudget: -1 },
      { memoryBudget: 0.5 },
      { maxBlockedWriteFrames: 0 },
      { maxBlockedWriteBytes: 1024 },
      { writeStallTimeoutMs: -1 },
      { writeStallTimeoutMs: Infinity },
    ]) {
      assert.throws(() => resolveSessionOptions(bad), (e: Error) => e instanceof RangeError && e.message.startsWith(Object.keys(bad)[0]!), JSON.stringify(bad));
    }
  });

  void test('ConnectionMemory: each kind within its own limit and the process budget, with messages that name the budget; close() gives everything back', () => {
    const processBudget = new MemoryBudget(100);
    const m = new ConnectionMemory({ maxReassemblyBytes: 60, maxQueuedSendBytes: 70, connectionWindow: 0 }, processBudget);
    assert.equal(m.reserveReassembly(50), undefined);
    assert.match(m.reserveReassembly(11)!, /maxReassemblyBytes of 60/);
    assert.equal(m.reserveQueuedSend(50), undefined);
    assert.match(m.reserveQueuedSend(1)!, /process-wide memoryBudget of 100 bytes/);
    m.releaseQueuedSend(50);
    assert.match(m.reserveQueuedSend(71)!, /maxQueuedSendBytes of 70/);
    assert.equal(processBudget.used, 50);
    m.close();
    assert.equal(processBudget.used, 0);
    m.releaseReassembly(50); // a stream letting go after the session closed changes nothing
    assert.equal(processBudget.used, 0);
    assert.notEqual(m.reserveQueuedSend(1), undefined, 'nothing more is reserved once closed');
  });

  void test('T-D9 reassembly: 10 000 fragments of 1 byte share a few blocks, charged by capacity plus 128 bytes each, not one object per fragment', () => {
    const m = memory();
    const r = new Reassembly({ maxMessageBytes: 4 * MiB, memory: m });
    const one = new Uint8Array([7]);
    for (let i = 0; i < 10_000; i++) assert.equal(r.hold(one), undefined);
    // blocks of 1, 1, 2, 4, 8 KiB: 16 KiB of capacity in 5 blocks
    assert.equal(m.heldBytes, 16 * KiB + 5 * BLOCK_OVERHEAD_BYTES);
    const message = r.complete(new Uint8Array([8]));
    assert.equal(message.length, 10_001);
    assert.ok(message.subarray(0, 10_000).every((b) => b === 7) && message[10_000] === 8);
    assert.equal(m.heldBytes, 0, 'completing gives everything back');
  });

  void test('T-D9 reassembly: 64 KiB fragments take one block each, exactly as large; a budget that would pass fails the fragment with its name', () => {
    const m = memory(4 * (64 * KiB + BLOCK_OVERHEAD_BYTES));
    const r = new Reassembly({ maxMessageBytes: 4 * MiB, memory: m });
    const frame = new Uint8Array(64 * KiB);
    for (let i = 0; i < 4; i++) assert.equal(r.hold(frame), undefined);
    assert.equal(m.heldBytes, 4 * (64 * KiB + BLOCK_OVERHEAD_BYTES));
    assert.match(r.hold(frame)!, /maxReassemblyBytes/);
    r.release();
    assert.equal(m.heldBytes, 0);
  });

  void test('T-D9 reassembly: two messages of the largest size in odd fragments (40 000 bytes) both fit the default budget (a block used to close half empty when the next fragment did not fit it, charging up to ~1.6 x)', () => {
    const maxMessageBytes = 64 * MiB;
    const m = memory(resolveSessionOptions({ maxMessageBytes }).maxReassemblyBytes);
    const a = new Reassembly({ maxMessageBytes, memory: m });
    const b = new Reassembly({ maxMessageBytes, memory: m });
    const fragment = new Uint8Array(40_000);
    const count = Math.floor((maxMessageBytes - 1) / fragment.length);
    for (let i = 0; i < count; i++) {
      assert.equal(a.hold(fragment), undefined, `message a, fragment ${i}`);
      assert.equal(b.hold(fragment), undefined, `message b, fragment ${i}`);
    }
    assert.equal(a.complete(new Uint8Array(1)).length, count * fragment.length + 1);
    assert.equal(b.complete(new Uint8Array(1)).length, count * fragment.length + 1);
    assert.equal(m.heldBytes, 0);
  });

  void test('T-D9 reassembly: any split of a message reassembles it exactly, and gives back all it reserved (property, fixed seed)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }), (sizes) => {
        const m = memory();
        const r = new Reassembly({ maxMessageBytes: 4 * MiB, memory: m });
        const parts = sizes.map((n, i) => new Uint8Array(n).fill(i & 0xff));
        for (const part of parts.slice(0, -1)) assert.equal(r.hold(part), undefined);
        const charged = m.heldBytes;
        const held = parts.slice(0, -1).reduce((n, p) => n + p.length, 0);
        // capacity never more than twice what is held, plus a block's overhead each
        assert.ok(charged <= Math.max(2 * held, 1024) + (sizes.length + 1) * BLOCK_OVERHEAD_BYTES, `${charged} charged for ${held} held`);
        // and within what the default budget allows a message (a fragment fills its block before a new one starts)
        assert.ok(charged <= reassemblyChargeOf(held), `${charged} charged for ${held} held, over reassemblyChargeOf`);
        const message = r.complete(parts.at(-1)!);
        assert.deepEqual(message, Buffer.concat(parts));
        assert.equal(m.heldBytes, 0);
      }),
      { seed: 10, numRuns: 200 },
    );
  });

  void test('T-D9 a unary response larger than maxQueuedSendBytes for a peer without credit fails RESOURCE_EXHAUSTED naming the option; one that fits waits and arrives', { timeout: 10_000 }, async (t) => {
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer', { initialStreamWindow: 16 * KiB, connectionWindow: 16 * KiB });
    const callee = createSession(b, 'acceptor', { maxQueuedSendBytes: 256 * KiB, services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const echo = caller.client(Bytes).echo;
    const fits = await within(echo(new Uint8Array(200 * KiB).fill(3)), 5000, 'a response within the budget');
    assert.equal(fits.length, 200 * KiB);
    const error = await rejectsWithStatus(echo(new Uint8Array(300 * KiB)), Status.RESOURCE_EXHAUSTED, 'a response over the budget');
    assert.match(error.message, /maxQueuedSendBytes of 262144/);
    assert.equal(callee.core.memory.heldBytes, 0, 'the failed response gave its reservation back');
    assert.equal((await echo(new Uint8Array(10))).length, 10, 'the connection is still up');
  });
  void test('T-D9 a response refused by our own maxQueuedSendBytes is no reset the peer provoked: past maxResetsPer30s an async handler\'s calls still fail RESOURCE_EXHAUSTED, nothing throws out of the send, and the connection stays up', { timeout: 10_000 }, async (t) => {
    const rejections: unknown[] = [];
    const onRejection = (error: unknown): void => void rejections.push(error);
    process.on('unhandledRejection', onRejection);
    t.after(() => process.off('unhandledRejection', onRejection));
    const Async = defineService('test.AsyncEcho', { echo: unary({ codec: 'raw' }) });
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer', { initialStreamWindow: 16 * KiB, connectionWindow: 16 * KiB });
    const callee = createSession(b, 'acceptor', {
      maxQueuedSendBytes: 256 * KiB,
      maxResetsPer30s: 3,
      services: [serve(Async, { echo: async (request: Uint8Array) => (await sleep(1), request) })],
    });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const echo = caller.client(Async).echo;
    for (let i = 0; i < 8; i++) {
      const error = await rejectsWithStatus(echo(new Uint8Array(300 * KiB)), Status.RESOURCE_EXHAUSTED, `response ${i} over the budget`);
      assert.match(error.message, /maxQueuedSendBytes of 262144/);
    }
    await sleep(20);
    assert.deepEqual(rejections, [], 'no unhandled rejection (it would kill a process run with the default behaviour)');
    assert.equal(callee.core.memory.heldBytes, 0, 'every refused response gave its reservation back');
    assert.equal((await within(echo(new Uint8Array(10)), 2000, 'a call after them')).length, 10, 'the connection is still up');
  });

  void test('T-D9 calls waiting for a concurrency slot are the application\'s backlog, not charged to maxQueuedSendBytes: 10 000 queued unary calls of 4 KiB against maxConcurrentStreams 100 all succeed, and every reservation goes back', { timeout: 60_000 }, async (t) => {
    const budget = new MemoryBudget(1024 * MiB);
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer', { memoryBudget: budget });
    const callee = createSession(b, 'acceptor', { maxConcurrentStreams: 100, services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const echo = caller.client(Bytes).echo;
    const request = new Uint8Array(4 * KiB);
    const results = await within(Promise.allSettled(Array.from({ length: 10_000 }, () => echo(request))), 50_000, '10 000 calls');
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(failed.length, 0, `${failed.length} failed, e.g. ${String((failed[0] as PromiseRejectedResult | undefined)?.reason)}`);
    assert.equal(caller.core.memory.heldBytes, 0);
    assert.equal(budget.used, 0, 'what was reserved as streams opened all went back');
  });

  void test('T-D9 queued sends are charged when their OPEN is written, exactly: released as written, on a reset while queued, and when the session fails', { timeout: 10_000 }, async (t) => {
    const budget = new MemoryBudget(1024 * MiB);
    const gate = deferred();
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer', { memoryBudget: budget, maxQueuedSendBytes: 40 * KiB });
    const callee = createSession(b, 'acceptor', { maxConcurrentStreams: 1, services: [bytesService(gate.promise)] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const client = caller.client(Bytes);
    const first = client.gated(new Uint8Array(10)); // takes the only slot until the gate opens
    await sleep(10);
    const controller = new AbortController();
    const cancelled = client.echo(new Uint8Array(30 * KiB), { signal: controller.signal });
    const queued = [client.echo(new Uint8Array(30 * KiB)), client.echo(new Uint8Array(30 * KiB))];
    await sleep(10);
    assert.equal(budget.used, 0, 'nothing charged while waiting for a slot (90 KiB queued, more than maxQueuedSendBytes)');
    controller.abort();
    await rejectsWithStatus(cancelled, Status.CANCELLED, 'the call cancelled while queued');
    assert.equal(budget.used, 0);
    gate.resolve();
    await first;
    for (const call of queued) assert.equal((await within(call, 5000, 'a queued call')).length, 30 * KiB);
    assert.equal(budget.used, 0, 'charged as opened, released as written');
    // the session fails while calls are queued: nothing stays reserved
    const held = client.gated(new Uint8Array(10));
    const more = client.echo(new Uint8Array(30 * KiB));
    await sleep(10);
    caller.destroy();
    await Promise.allSettled([held, more]);
    assert.equal(budget.used, 0);
  });

  void test('T-D9 a fragment refused by the process-wide budget (other connections fill it) is no reset this peer provoked: past maxResetsPer30s its calls fail RESOURCE_EXHAUSTED and the connection stays up', { timeout: 10_000 }, async (t) => {
    const shared = new MemoryBudget(1 * MiB);
    assert.equal(shared.tryReserve(1 * MiB), true, 'other connections hold all of it');
    const [a, b] = createMemoryPair();
    const caller = createSession(a, 'dialer');
    const callee = createSession(b, 'acceptor', { memoryBudget: shared, maxResetsPer30s: 3, services: [bytesService()] });
    t.after(() => {
      caller.destroy();
      callee.destroy();
    });
    await within(Promise.all([caller.ready, callee.ready]), 1000, 'handshake');
    const echo = caller.client(Bytes).echo;
    for (let i = 0; i < 8; i++) {
      // larger than one frame: its first fragment must be held, and the process budget refuses it
      const error = await rejectsWithStatus(echo(new Uint8Array(200 * KiB)), Status.RESOURCE_EXHAUSTED, `request ${i}`);
      assert.match(error.message, /process-wide memoryBudget/);
    }
    assert.equal((await within(echo(new Uint8Array(10)), 2000, 'a call after them')).length, 10, 'the connection is still up');
    shared.release(1 * MiB);
    assert.equal(shared.used, 0);
  });
});
