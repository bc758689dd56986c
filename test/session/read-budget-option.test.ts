/**
 * readBudgetBytes: the per-turn read budget is a session option (a number, or a function of the peer's HELLO), applied
 * once the handshake is done; every connection has one by default (256 KiB), so one busy peer cannot hold the event
 * loop. The session itself knows no lane names: a connection labelled `data` gets the default unless its owner (a
 * Mesh) asks for another.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { createMemoryPair } from '../../src/index.js';
import type { SessionPeer } from '../../src/session/handshake.js';
import { resolveSessionOptions, type SessionOptions } from '../../src/session/options.js';
import { Session } from '../../src/session/session.js';
import type { Transport } from '../../src/transport/transport.js';
import { within } from '../helpers.js';

/** A transport that records the read budgets the session sets on it. */
function recordingBudgets(inner: Transport, budgets: number[]): Transport {
  return {
    peer: inner.peer,
    attach: (sink) => inner.attach(sink),
    write: (chunks) => inner.write(chunks),
    end: () => inner.end(),
    destroy: (error) => inner.destroy(error),
    setReadBudget: (bytes) => void budgets.push(bytes),
  };
}

/** Connects two core Sessions; returns the budgets each side's transport was given by the end of the handshake. */
async function budgetsAfterHandshake(t: TestContext, dialerOptions: SessionOptions, acceptorOptions: SessionOptions): Promise<{ dialer: number[]; acceptor: number[] }> {
  const [a, b] = createMemoryPair();
  const budgets = { dialer: [] as number[], acceptor: [] as number[] };
  const dialer = new Session(recordingBudgets(a, budgets.dialer), 'dialer', { onStream: () => undefined }, dialerOptions);
  const acceptor = new Session(recordingBudgets(b, budgets.acceptor), 'acceptor', { onStream: () => undefined }, acceptorOptions);
  t.after(() => {
    dialer.destroy();
    acceptor.destroy();
  });
  await within(Promise.all([dialer.ready, acceptor.ready]), 1000, 'handshake');
  return budgets;
}

void test("a 256 KiB read budget by default, on connections labelled 'data' too: the session knows no lane names", { timeout: 5000 }, async (t) => {
  const budgets = await budgetsAfterHandshake(t, { label: 'data' }, { label: 'data' });
  assert.deepEqual(budgets, { dialer: [256 * 1024], acceptor: [256 * 1024] });
});

void test('readBudgetBytes: 0 sets no budget', { timeout: 5000 }, async (t) => {
  const budgets = await budgetsAfterHandshake(t, { readBudgetBytes: 0 }, { readBudgetBytes: () => 0 });
  assert.deepEqual(budgets, { dialer: [], acceptor: [] });
});

void test('readBudgetBytes: a number is set on the transport once the handshake is done', { timeout: 5000 }, async (t) => {
  const budgets = await budgetsAfterHandshake(t, { readBudgetBytes: 4096 }, {});
  assert.deepEqual(budgets, { dialer: [4096], acceptor: [256 * 1024] });
});

void test("readBudgetBytes: a function decides from the peer's HELLO (a listener's view of which lane dialed it)", { timeout: 5000 }, async (t) => {
  const asked: SessionPeer[] = [];
  const byLabel = (peer: SessionPeer): number => {
    asked.push(peer);
    return peer.label === 'bulk' ? 65_536 : 0;
  };
  const budgets = await budgetsAfterHandshake(t, { label: 'bulk', nodeName: 'n1' }, { readBudgetBytes: byLabel });
  assert.deepEqual(budgets, { dialer: [256 * 1024], acceptor: [65_536] });
  assert.equal(asked.length, 1);
  assert.equal(asked[0]!.nodeName, 'n1');
  assert.equal(asked[0]!.label, 'bulk');
});

void test('readBudgetBytes must be a non-negative integer or a function', () => {
  assert.throws(() => resolveSessionOptions({ readBudgetBytes: -1 }), /readBudgetBytes must be an integer/);
  assert.throws(() => resolveSessionOptions({ readBudgetBytes: 1.5 }), /readBudgetBytes must be an integer/);
  assert.equal(resolveSessionOptions({}).readBudgetBytes, 256 * 1024);
});
