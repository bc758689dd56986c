/**
 * What a mesh does with its membership sources' answers (src/mesh/membership/reconciler.ts), against a stand-in mesh
 * and a clock the test moves: diffing, the flap guard, a failing source keeping its last set, bad entries, maxPeers,
 * the node's own name, static peers, address changes, several sources, stop.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { MembershipReconciler } from '../../src/mesh/membership/reconciler.js';
import type { MembershipSource } from '../../src/mesh/membership/membership.js';
import { FakeClock, FakeMeshTarget, ManualSource } from '../fixtures/membership.js';

function setup(
  sources: ManualSource | ManualSource[] = new ManualSource('manual', 0),
  target = new FakeMeshTarget(),
): { target: FakeMeshTarget; clock: FakeClock; reconciler: MembershipReconciler; source: ManualSource } {
  const clock = new FakeClock();
  const reconciler = new MembershipReconciler(sources, target, clock.now);
  reconciler.start();
  return { target, clock, reconciler, source: Array.isArray(sources) ? sources[0]! : sources };
}

void describe('membership: diffing answers against the mesh', () => {
  void test('a new name is added, a vanished one removed (removeAfterMs 0), each change reported', () => {
    const { target, source } = setup();
    source.answer({ a: 'tcp://10.0.0.1:7001', b: 'tcp://10.0.0.2:7001' });
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:7001', b: 'tcp://10.0.0.2:7001' });
    source.answer({ b: 'tcp://10.0.0.2:7001', c: 'tcp://10.0.0.3:7001' });
    assert.deepEqual(target.snapshot(), { b: 'tcp://10.0.0.2:7001', c: 'tcp://10.0.0.3:7001' });
    assert.deepEqual(
      target.changes.map((c) => `${c.change} ${c.peer} ${c.url} ${c.source}`),
      ['add a tcp://10.0.0.1:7001 manual', 'add b tcp://10.0.0.2:7001 manual', 'remove a tcp://10.0.0.1:7001 manual', 'add c tcp://10.0.0.3:7001 manual'],
    );
    assert.ok(target.logs.some((l) => l.level === 'info' && /membership from manual: remove a/.test(l.message)), 'each change logged at info');
  });

  void test('an unchanged answer changes nothing', () => {
    const { target, source } = setup();
    source.answer({ a: 'tcp://10.0.0.1:7001' });
    source.answer({ a: 'tcp://10.0.0.1:7001' });
    assert.deepEqual(target.calls, ['add a tcp://10.0.0.1:7001']);
  });

  void test("the node's own name is skipped silently", () => {
    const { target, source } = setup();
    source.answer({ self: 'tcp://10.0.0.9:7001', a: 'tcp://10.0.0.1:7001' });
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:7001' });
    assert.deepEqual(target.warnings(), []);
  });

  void test('static peers are never removed nor re-addressed by a source', () => {
    const { target, source } = setup(new ManualSource('manual', 0), new FakeMeshTarget('self', { s: 'tcp://10.0.0.5:7001', d: null }));
    source.answer({ s: 'tcp://10.9.9.9:7001', a: 'tcp://10.0.0.1:7001' });
    source.answer({});
    source.answer({ s: 'tcp://10.8.8.8:7001' });
    assert.deepEqual(target.snapshot(), { d: null, s: 'tcp://10.0.0.5:7001' });
    assert.ok(!target.calls.some((c) => / s | d /.test(` ${c} `)), `calls: ${target.calls.join('; ')}`);
    assert.deepEqual(target.warnings(/ s\b/), [], 'not even tried (addPeer would refuse the name)');
  });

  void test('an address change: the old peer removed (with the grace), a peer of the same name added at the new address', () => {
    const { target, source } = setup(new ManualSource('manual', 60_000, undefined, 1_234));
    source.answer({ a: 'tcp://10.0.0.1:7001' });
    source.answer({ a: 'tcp://10.0.0.7:7001' });
    assert.deepEqual(target.calls, ['add a tcp://10.0.0.1:7001', 'remove a grace=1234', 'add a tcp://10.0.0.7:7001']);
    const last = target.changes.at(-1)!;
    assert.deepEqual({ ...last }, { change: 'address', peer: 'a', url: 'tcp://10.0.0.7:7001', previousUrl: 'tcp://10.0.0.1:7001', source: 'manual' });
  });

});

void describe("membership: a source's peer the application removed or replaced is the application's", () => {
  void test('taken over (removePeer, then addPeer at its own address): never removed when the source drops the name', () => {
    const { target, clock, source } = setup();
    source.answer({ x: 'tcp://10.0.0.1:1' });
    void target.removePeer('x', 0);
    target.addPeer('x', 'tcp://10.9.9.9:1');
    clock.advance(10);
    source.answer({});
    source.answer({});
    assert.deepEqual(target.snapshot(), { x: 'tcp://10.9.9.9:1' });
    assert.deepEqual(target.changes.map((c) => `${c.change} ${c.peer}`), ['add x'], 'no remove reported for a peer that is not the source\'s');
  });

  void test('taken over: never re-addressed when the source moves the name, nor after it drops and names it again', () => {
    const { target, source } = setup();
    source.answer({ x: 'tcp://10.0.0.1:1' });
    void target.removePeer('x', 0);
    target.addPeer('x', 'tcp://10.9.9.9:1');
    source.answer({ x: 'tcp://10.0.0.7:1' });
    source.answer({});
    source.answer({ x: 'tcp://10.0.0.8:1' });
    assert.deepEqual(target.snapshot(), { x: 'tcp://10.9.9.9:1' });
    assert.deepEqual(target.calls, ['add x tcp://10.0.0.1:1', 'remove x grace=0', 'add x tcp://10.9.9.9:1']);
  });

  void test('taken over at the same address: still the application\'s (the peer, not its address, says whose it is)', () => {
    const { target, source } = setup();
    source.answer({ x: 'tcp://10.0.0.1:1' });
    void target.removePeer('x', 0);
    target.addPeer('x', 'tcp://10.0.0.1:1');
    source.answer({});
    assert.deepEqual(target.snapshot(), { x: 'tcp://10.0.0.1:1' });
  });

  void test('removed by hand: stays out while the source names it; added again once the source dropped it (removeAfterMs) and names it again', () => {
    const { target, clock, source } = setup(new ManualSource('dns', 1_000));
    source.answer({ a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.2:1' });
    void target.removePeer('x', 0);
    source.answer({ a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.2:1' });
    clock.advance(5_000);
    source.answer({ a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.3:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a'], 'not re-added, not even at a new address');
    assert.equal(target.logs.filter((l) => l.level === 'info' && /x was removed by hand; this source leaves it alone/.test(l.message)).length, 1, 'said once');
    // a partial answer is not the source dropping it (the flap guard)
    source.answer({ a: 'tcp://10.0.0.1:1' });
    clock.advance(500);
    source.answer({ a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.3:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a']);
    // gone from the answers for removeAfterMs: the name is the source's again
    source.answer({ a: 'tcp://10.0.0.1:1' });
    clock.advance(1_000);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    source.answer({ a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.4:1' });
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:1', x: 'tcp://10.0.0.4:1' });
    assert.deepEqual(target.changes.map((c) => `${c.change} ${c.peer}`), ['add a', 'add x', 'add x']);
  });
});

void describe('membership: flap guard (removeAfterMs)', () => {
  void test('with removeAfterMs = 2 intervals, a peer missing from one or two answers stays; from the third in a row it is removed', () => {
    const interval = 30_000;
    const { target, clock, source } = setup(new ManualSource('dns', 2 * interval));
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    // a partial answer once, then b is back: nothing happens
    clock.advance(interval);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    clock.advance(interval);
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'b']);
    // then gone for good: the first and second answers without it keep it, the third removes it
    clock.advance(interval);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    clock.advance(interval);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'b'], 'missing for one interval: stays');
    clock.advance(interval - 1); // a timer firing a millisecond early still counts as the full interval
    source.answer({ a: 'tcp://10.0.0.1:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a']);
    assert.deepEqual(target.calls.filter((c) => c.startsWith('remove')), ['remove b grace=10000']);
  });

  void test('by time, not by count: many answers without a peer in quick succession (watch events, refresh()) do not remove it sooner', () => {
    const { target, clock, source } = setup(new ManualSource('file', 10_000));
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    for (let i = 0; i < 9; i++) {
      source.answer({ a: 'tcp://10.0.0.1:1' });
      clock.advance(1_000);
    }
    assert.ok(target.has('b'), 'nine answers without it over 9 s: stays');
    clock.advance(1_000);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    assert.ok(!target.has('b'));
  });

  void test('the missing clock starts over when the peer comes back', () => {
    const { target, clock, source } = setup(new ManualSource('dns', 1_000));
    source.answer({ a: 'tcp://10.0.0.1:1' });
    source.answer({});
    clock.advance(900);
    source.answer({ a: 'tcp://10.0.0.1:1' });
    clock.advance(200);
    source.answer({});
    clock.advance(900);
    source.answer({});
    assert.ok(target.has('a'), 'missing for 900 ms since it came back: stays');
    clock.advance(100);
    source.answer({});
    assert.ok(!target.has('a'));
  });
});

void describe('membership: a failing source keeps its last set', () => {
  void test('failures change nothing however long they last; one warning per streak; a new streak warns again', () => {
    const { target, clock, source } = setup(new ManualSource('dns', 1_000));
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    for (let i = 0; i < 5; i++) {
      clock.advance(10_000);
      source.fail('queryA ESERVFAIL nodes.example');
    }
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'b']);
    assert.equal(target.warnings(/ESERVFAIL/).length, 1);
    assert.match(target.warnings(/ESERVFAIL/)[0]!, /keeping its last 2 peer\(s\)/);
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    assert.ok(target.logs.some((l) => l.level === 'info' && /answers again after 5 failed read/.test(l.message)));
    source.fail('queryA ETIMEOUT nodes.example');
    assert.equal(target.warnings(/ETIMEOUT/).length, 1, 'a new streak warns again');
  });

  void test('a source that fails before its first answer adds nothing and removes nothing', () => {
    const { target, source } = setup(new ManualSource('dns', 0), new FakeMeshTarget('self', { s: 'tcp://10.0.0.5:1' }));
    source.fail();
    source.fail();
    assert.deepEqual(target.calls, []);
    assert.equal(target.warnings().length, 1);
  });

  void test('an answer whose iteration throws halfway is a failed read, not a smaller set', () => {
    const { target, source } = setup();
    source.answer({ a: 'tcp://10.0.0.1:1', b: 'tcp://10.0.0.2:1' });
    source.sink!.update(
      (function* () {
        yield ['a', 'tcp://10.0.0.1:1'] as const;
        throw new Error('torn answer');
      })(),
    );
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'b']);
    assert.equal(target.warnings(/torn answer/).length, 1);
  });

  void test('an empty answer is an answer (peers leave after removeAfterMs), warned once per streak', () => {
    const { target, source } = setup(new ManualSource('dns', 0));
    source.answer({ a: 'tcp://10.0.0.1:1' });
    source.answer({});
    source.answer({});
    assert.deepEqual(target.snapshot(), {});
    assert.equal(target.warnings(/names no node/).length, 1);
  });
});

void describe('membership: bounds and bad entries', () => {
  void test('bad entries are skipped with one warning each (while they stay), never thrown; good ones are added', () => {
    const { target, source } = setup(new ManualSource('file', 0), new FakeMeshTarget('self', {}, 'tcp'));
    const entries: Array<[unknown, unknown]> = [
      ['ok', 'tcp://10.0.0.1:7001'],
      ['', 'tcp://10.0.0.2:7001'],
      ['x'.repeat(256), 'tcp://10.0.0.3:7001'],
      ['web', 'http://10.0.0.4'],
      ['secure', 'tls://10.0.0.5:7001'],
      ['num', 42],
      [7, 'tcp://10.0.0.6:7001'],
    ];
    assert.doesNotThrow(() => source.answer(entries));
    assert.deepEqual(target.snapshot(), { ok: 'tcp://10.0.0.1:7001' });
    assert.equal(target.warnings(/skipping/).length, 6, target.warnings().join('\n'));
    source.answer(entries);
    assert.equal(target.warnings(/skipping/).length, 6, 'not again while they stay');
    source.answer([['ok', 'tcp://10.0.0.1:7001']]);
    source.answer(entries);
    assert.equal(target.warnings(/skipping/).length, 12, 'again once they left and came back');
  });

  void test('two addresses for one name: the first by address is kept, the other skipped with a warning', () => {
    const { target, source } = setup();
    source.answer([
      ['a', 'tcp://10.0.0.9:1'],
      ['a', 'tcp://10.0.0.1:1'],
    ]);
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:1' });
    assert.equal(target.warnings(/second address/).length, 1);
  });

  void test('more than maxPeers: the first maxPeers by name are kept, one warning per streak', () => {
    const { target, source } = setup(new ManualSource('dns', 0, 3));
    const answer = { e: 'tcp://h:5', b: 'tcp://h:2', d: 'tcp://h:4', a: 'tcp://h:1', c: 'tcp://h:3', self: 'tcp://h:9' };
    source.answer(answer);
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'b', 'c']);
    source.answer(answer);
    assert.equal(target.warnings(/more than maxPeers \(3\)/).length, 1);
    assert.match(target.warnings(/maxPeers/)[0]!, /5 peers/, "the node's own entry is not counted");
  });

  void test('a source or its policy that does not check out is refused when the mesh is made', () => {
    const target = new FakeMeshTarget();
    assert.throws(() => new MembershipReconciler({ description: 'x' } as unknown as MembershipSource, target), TypeError);
    assert.throws(() => new MembershipReconciler(new ManualSource('x', -1), target), RangeError);
    assert.throws(() => new MembershipReconciler(new ManualSource('x', 0, 0), target), RangeError);
    const shared = new ManualSource('shared');
    new MembershipReconciler(shared, target);
    assert.throws(() => new MembershipReconciler(shared, target), /already given to a mesh/);
  });
});

void describe('membership: several sources, and stop', () => {
  void test('the union of every source: the first to name a node wins; a failing source keeps its peers in it', () => {
    const dns = new ManualSource('dns', 0);
    const file = new ManualSource('file', 0);
    const { target } = setup([dns, file]);
    dns.answer({ a: 'tcp://10.0.0.1:1', shared: 'tcp://10.0.0.2:1' });
    file.answer({ shared: 'tcp://10.9.9.9:1', f: 'tcp://10.0.0.3:1' });
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:1', f: 'tcp://10.0.0.3:1', shared: 'tcp://10.0.0.2:1' });
    dns.fail();
    file.answer({ f: 'tcp://10.0.0.3:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'f', 'shared'], "dns's last set stays while it fails");
    dns.answer({ a: 'tcp://10.0.0.1:1' });
    assert.deepEqual(Object.keys(target.snapshot()), ['a', 'f']);
  });

  void test('stop() stops every source, and answers after it change nothing', () => {
    const { target, reconciler, source } = setup();
    source.answer({ a: 'tcp://10.0.0.1:1' });
    reconciler.stop();
    assert.equal(source.stopped, true);
    source.answer({ b: 'tcp://10.0.0.2:1' });
    source.fail();
    assert.deepEqual(target.snapshot(), { a: 'tcp://10.0.0.1:1' });
    assert.deepEqual(target.warnings(), []);
  });
});
