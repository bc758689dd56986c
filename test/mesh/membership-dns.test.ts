/**
 * dnsMembership against a resolver the test answers (src/mesh/membership/dns-membership.ts): names and addresses from
 * A, AAAA and SRV records, which answers are empty sets and which are failed reads, bounds, options, and stop. The
 * same source against a real DNS server (dnsmasq in a network namespace) is test/net/membership-dns.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { dnsMembership, type DnsMembershipOptions } from '../../src/index.js';
import type { MembershipSink } from '../../src/mesh/membership/membership.js';
import { FakeResolver } from '../fixtures/membership.js';
import { trackTimers, until, within } from '../helpers.js';

class RecordingSink implements MembershipSink {
  readonly answers: Array<Array<[string, string]>> = [];
  readonly failures: string[] = [];
  readonly warnings: string[] = [];
  constructor(readonly scheme: 'tcp' | 'tls' = 'tcp') {}
  update(peers: Iterable<readonly [string, string]>): void {
    this.answers.push([...peers].map(([n, u]) => [n, u]));
  }
  fail(error: Error): void {
    this.failures.push(error.message);
  }
  warn(message: string): void {
    this.warnings.push(message);
  }
  get last(): Record<string, string> {
    return Object.fromEntries(this.answers.at(-1) ?? []);
  }
}

/** A started source over `resolver`, stopped after the test; its first read done. */
async function started(t: { after(fn: () => void): void }, resolver: FakeResolver, options: Omit<DnsMembershipOptions, 'resolver'>, sink = new RecordingSink()) {
  const source = dnsMembership({ ...options, resolver });
  t.after(() => source.stop());
  source.start(sink);
  await until(() => sink.answers.length + sink.failures.length > 0, 2000, 'the first read');
  return { source, sink };
}

void describe('dnsMembership: A and AAAA records', () => {
  void test('every A address is a node named address:port, dialed at tcp://address:port (tls:// when the mesh has tls)', async (t) => {
    const resolver = new FakeResolver();
    resolver.a.set('nodes.example', ['10.0.0.3', '10.0.0.1', '10.0.0.1']);
    const { sink } = await started(t, resolver, { name: 'nodes.example', port: 7001 });
    assert.deepEqual(sink.last, { '10.0.0.1:7001': 'tcp://10.0.0.1:7001', '10.0.0.3:7001': 'tcp://10.0.0.3:7001' });
    const { sink: tls } = await started(t, resolver, { name: 'nodes.example', port: 7001 }, new RecordingSink('tls'));
    assert.equal(tls.last['10.0.0.1:7001'], 'tls://10.0.0.1:7001');
  });

  void test('AAAA (family 6): names and addresses with the IPv6 address in brackets', async (t) => {
    const resolver = new FakeResolver();
    resolver.aaaa.set('nodes.example', ['fd00::2', 'fd00::1']);
    const { source, sink } = await started(t, resolver, { name: 'nodes.example', port: 7001, family: 6 });
    assert.deepEqual(sink.last, { '[fd00::1]:7001': 'tcp://[fd00::1]:7001', '[fd00::2]:7001': 'tcp://[fd00::2]:7001' });
    assert.equal(source.description, 'dns AAAA nodes.example');
  });

  void test("family 'auto' (default): A records when there are any, else AAAA, so a dual-stack node is one node", async (t) => {
    const resolver = new FakeResolver();
    resolver.a.set('dual.example', ['10.0.0.1']);
    resolver.aaaa.set('dual.example', ['fd00::1']);
    resolver.a.set('v6only.example', 'ENODATA');
    resolver.aaaa.set('v6only.example', ['fd00::9']);
    assert.deepEqual((await started(t, resolver, { name: 'dual.example', port: 1 })).sink.last, { '10.0.0.1:1': 'tcp://10.0.0.1:1' });
    assert.deepEqual((await started(t, resolver, { name: 'v6only.example', port: 1 })).sink.last, { '[fd00::9]:1': 'tcp://[fd00::9]:1' });
  });

  void test('NXDOMAIN and NODATA are answers with no node; SERVFAIL, timeouts and refusals are failed reads', async (t) => {
    const resolver = new FakeResolver();
    const { source, sink } = await started(t, resolver, { name: 'gone.example', port: 1, family: 4 });
    assert.deepEqual(sink.answers, [[]]);
    for (const code of ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED'] as const) {
      resolver.a.set('gone.example', code);
      await source.refresh();
    }
    assert.equal(sink.answers.length, 1, 'no answer from a failed read');
    assert.deepEqual(sink.failures.map((f) => /E[A-Z]+/.exec(f)?.[0]), ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED']);
  });

  void test('nameOf names the nodes; a nameOf that throws skips that node with one warning', async (t) => {
    const resolver = new FakeResolver();
    resolver.a.set('nodes.example', ['10.0.0.1', '10.0.0.2']);
    const { sink } = await started(t, resolver, {
      name: 'nodes.example',
      port: 7001,
      nameOf: (record) => {
        if (record.address === '10.0.0.2') throw new Error('no name for it');
        return `node-${record.address.split('.').at(-1)}-${record.family}-${record.port}`;
      },
    });
    assert.deepEqual(sink.last, { 'node-1-4-7001': 'tcp://10.0.0.1:7001' });
    assert.equal(sink.warnings.filter((w) => /nameOf threw/.test(w)).length, 1);
  });
});

void describe('dnsMembership: SRV records', () => {
  void test("each target is a node named by its host name (lower-case, no trailing dot), at its lowest address and the record's port", async (t) => {
    const resolver = new FakeResolver();
    resolver.srv.set('_gw._tcp.nodes.example', [
      { name: 'Pod-1.nodes.example.', port: 7001, priority: 0, weight: 10 },
      { name: 'pod-0.nodes.example', port: 7002, priority: 0, weight: 10 },
      { name: 'pod-0.nodes.example', port: 7002, priority: 5, weight: 1 }, // the same node twice
      { name: 'pod-2.nodes.example', port: 7001, priority: 0, weight: 10 }, // its A lookup says NXDOMAIN: just gone
      { name: '.', port: 0, priority: 0, weight: 0 }, // "no service here"
    ]);
    resolver.a.set('pod-1.nodes.example', ['10.0.0.11', '10.0.0.10']);
    resolver.a.set('pod-0.nodes.example', ['10.0.0.20']);
    const { source, sink } = await started(t, resolver, { name: '_gw._tcp.nodes.example', srv: true });
    assert.deepEqual(sink.last, { 'pod-0.nodes.example': 'tcp://10.0.0.20:7002', 'pod-1.nodes.example': 'tcp://10.0.0.10:7001' });
    assert.equal(source.description, 'dns SRV _gw._tcp.nodes.example');
  });

  void test('a target whose lookup fails (SERVFAIL) fails the whole read: a partial set from a sick server is not an answer', async (t) => {
    const resolver = new FakeResolver();
    resolver.srv.set('_gw._tcp.x', [
      { name: 'a.x', port: 1, priority: 0, weight: 0 },
      { name: 'b.x', port: 1, priority: 0, weight: 0 },
    ]);
    resolver.a.set('a.x', ['10.0.0.1']);
    resolver.a.set('b.x', 'ESERVFAIL');
    const { sink } = await started(t, resolver, { name: '_gw._tcp.x', srv: true });
    assert.deepEqual(sink.answers, []);
    assert.equal(sink.failures.length, 1);
  });

  void test('a failing target stops the read: the targets not yet looked up are not asked for', async (t) => {
    const resolver = new FakeResolver();
    const records = Array.from({ length: 40 }, (_, i) => ({ name: `n${String(i).padStart(2, '0')}.x`, port: 1, priority: 0, weight: 0 }));
    resolver.srv.set('_gw._tcp.x', records);
    for (const { name } of records) resolver.a.set(name, ['10.0.0.1']);
    resolver.a.set('n00.x', 'ETIMEOUT');
    const { sink } = await started(t, resolver, { name: '_gw._tcp.x', srv: true, family: 4 });
    assert.equal(sink.failures.length, 1);
    assert.ok(resolver.queries <= 1 + 2 * 8, `${resolver.queries} queries: the 8 lookups at once, not all 40`);
  });

  void test('more SRV targets than maxPeers: only the first maxPeers by name are looked up, one warning', async (t) => {
    const resolver = new FakeResolver();
    const records = Array.from({ length: 50 }, (_, i) => ({ name: `n${String(i).padStart(2, '0')}.x`, port: 1, priority: 0, weight: 0 }));
    resolver.srv.set('_gw._tcp.x', records.reverse());
    for (const { name } of records) resolver.a.set(name, ['10.0.0.1']);
    const { source, sink } = await started(t, resolver, { name: '_gw._tcp.x', srv: true, maxPeers: 5, family: 4 });
    assert.deepEqual(Object.keys(sink.last), ['n00.x', 'n01.x', 'n02.x', 'n03.x', 'n04.x']);
    assert.equal(resolver.queries, 1 + 5, 'one SRV query and one A query per kept target');
    await source.refresh();
    assert.equal(sink.warnings.filter((w) => /50 SRV targets, more than maxPeers \(5\)/.test(w)).length, 1);
  });
});

void describe('dnsMembership: options and lifecycle', () => {
  void test('options that cannot work are refused when the source is made', () => {
    assert.throws(() => dnsMembership({ name: 'x' }), /port must be an integer/);
    assert.throws(() => dnsMembership({ name: '', port: 1 }), TypeError);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, family: 5 as 4 }), TypeError);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, intervalMs: 999 }), /intervalMs must be a number of ms in 1000/);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, removeAfterMs: -1 }), RangeError);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, maxPeers: 0 }), RangeError);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, queryTimeoutMs: 10 }), RangeError);
    assert.throws(() => dnsMembership({ name: 'x', port: 1, servers: ['not an address'] }), /servers/);
    assert.equal(dnsMembership({ name: 'x', port: 1 }).removeAfterMs, 60_000, 'two intervals of 30 s');
    assert.equal(dnsMembership({ name: 'x', port: 1, intervalMs: 5_000 }).removeAfterMs, 10_000);
  });

  void test('reads again every intervalMs on an unref\'d timer; stop() leaves no timer and cancels queries in flight', async (t) => {
    const timers = trackTimers();
    t.after(() => timers.stop());
    const resolver = new FakeResolver();
    resolver.a.set('x', ['10.0.0.1']);
    const source = dnsMembership({ name: 'x', port: 1, intervalMs: 1_000, resolver });
    const sink = new RecordingSink();
    source.start(sink);
    await within(
      (async () => {
        while (sink.answers.length < 2) await new Promise((resolve) => setImmediate(resolve));
      })(),
      3_000,
      'a second read one interval later',
    );
    assert.ok(timers.live().length >= 1, 'the next read is armed');
    source.stop();
    assert.deepEqual(timers.live(), []);
    assert.equal(resolver.cancelled, 1);
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    assert.equal(sink.answers.length, 2, 'no read after stop');
  });

  void test('a refresh() during a read reads again after it (the records may have changed since it began), and resolves once that read is done', async (t) => {
    const resolver = new FakeResolver();
    resolver.a.set('x', ['10.0.0.1']);
    const source = dnsMembership({ name: 'x', port: 1, family: 4, resolver });
    t.after(() => source.stop());
    const sink = new RecordingSink();
    source.start(sink); // the first read is under way
    resolver.a.set('x', ['10.0.0.2']);
    await within(source.refresh(), 3_000, 'the second read');
    assert.equal(sink.answers.length, 2);
    assert.deepEqual(sink.last, { '10.0.0.2:1': 'tcp://10.0.0.2:1' });
  });

  void test('the system resolver with `servers`: a server that does not answer is a failed read, within the query timeout', async (t) => {
    const source = dnsMembership({ name: 'nodes.example', port: 1, servers: ['127.0.0.1:9'], queryTimeoutMs: 200 });
    t.after(() => source.stop());
    const sink = new RecordingSink();
    source.start(sink);
    await within(source.refresh(), 4_000, 'the read to fail');
    assert.equal(sink.answers.length, 0);
    assert.equal(sink.failures.length, 2, `the read under way at refresh(), then the one it asked for: ${sink.failures.join()}`);
  });
});
