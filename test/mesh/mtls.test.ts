/**
 * A mesh over mutual TLS (`new Mesh({ ..., tls })`): nodes listen and dial on tls://, and a node's name is bound to its
 * certificate in both directions (src/mesh/certificate-name.ts). T-Z1's "wrong SAN for the mesh name": a node that
 * holds a valid cluster certificate for n3 cannot act as n2, neither by dialing as n2 (the acceptor refuses it in its
 * admission, before any handler runs) nor by answering at n2's address (the dialer refuses it during TLS). Each
 * refusal is logged with the name and the certificate's names. A plain TCP mesh keeps its old behaviour: it trusts
 * the names in HELLOs.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';

import { Mesh, type MeshOptions } from '../../src/index.js';
import { testPki, type KeyPair } from '../fixtures/certs.js';
import { FAST_RECONNECT, newMesh } from '../fixtures/connections.js';
import { rawTlsCall, Who, whoService } from '../fixtures/tls.js';
import { sleep, until, within } from '../helpers.js';

const TEST_MS = 15_000;

/** A node's TLS options: `pair` (the node's own certificate by default) and the cluster CA. */
function nodeTls(name: string, pair: KeyPair = testPki().node(name)): MeshOptions['tls'] {
  return { key: pair.key, cert: pair.cert, ca: testPki().ca };
}

/** A started mesh node over mutual TLS on a free loopback port; `logs` gets its log; its handlers counted in `calls`. */
async function tlsNode(
  t: TestContext,
  options: Omit<MeshOptions, 'tls'> & { tls?: MeshOptions['tls'] },
  logs: string[] = [],
  calls: { count: number } = { count: 0 },
): Promise<Mesh> {
  const mesh = newMesh(t, { services: [whoService(calls)], fallbackDialAfterMs: 0, ...options, tls: options.tls ?? nodeTls(options.name) }, logs);
  await within(mesh.start(), 3_000, `mesh ${options.name} to start`);
  return mesh;
}

void describe('mesh over mutual TLS', () => {
  void test('two nodes connect over tls:// and call each other; each handler sees the caller\'s certificate in ctx.peer.identity', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const n1 = await tlsNode(t, { name: 'n1', listen: 'tls://127.0.0.1:0', peers: { n2: null } });
    const n2 = await tlsNode(t, { name: 'n2', peers: { n1: n1.url! } });
    assert.match(n1.url!, /^tls:\/\/127\.0\.0\.1:\d+$/);
    await within(Promise.all([n1.peer('n2').whenReady({ timeoutMs: 3_000 }), n2.peer('n1').whenReady({ timeoutMs: 3_000 })]), 4_000, 'both ready');
    const toN1 = await n2.peer('n1').client(Who).whoami(null);
    assert.deepEqual(toN1, { nodeName: 'n2', transport: 'tls', commonName: 'n2', uris: [], fingerprint256: new X509Certificate(pki.node('n2').cert).fingerprint256 });
    const toN2 = await n1.peer('n2').client(Who).whoami(null);
    assert.equal(toN2.nodeName, 'n1');
    assert.equal(toN2.fingerprint256, new X509Certificate(pki.node('n1').cert).fingerprint256);
    const [session] = n1.peer('n2').sessions.get('control') ?? [];
    assert.deepEqual(session?.peer.identity?.dnsNames, ['n2']);
  });

  void test('T-Z1 wrong SAN, acceptor side: a node holding a valid certificate for n3 that dials as n2 is refused before any handler runs; the log names "n2" and the certificate\'s names', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const logs: string[] = [];
    const calls = { count: 0 };
    const n1 = await tlsNode(t, { name: 'n1', listen: 'tls://127.0.0.1:0', peers: { n2: null } }, logs, calls);
    const impostorLogs: string[] = [];
    const impostor = await tlsNode(t, { name: 'n2', tls: nodeTls('n2', pki.node('n3')), peers: { n1: n1.url! } }, impostorLogs);
    await until(() => logs.some((l) => l.includes('it claims to be node')), 3_000, 'n1 to refuse the impostor');
    assert.match(logs.find((l) => l.includes('it claims'))!, /^warn closed the connection from tls:\/\/127\.0\.0\.1:\d+: GW_ERR_UNAUTHENTICATED: it claims to be node "n2" but its certificate is for "DNS:n3", "CN=n3"$/);
    assert.notEqual(impostor.peer('n1').state, 'ready');
    // the impostor is told why (GOAWAY UNAUTHENTICATED): a refusal retrying will not mend, so it warns at once
    await until(() => impostorLogs.some((l) => /UNAUTHENTICATED.*it claims to be node "n2"/.test(l)), 3_000, 'the impostor to be told UNAUTHENTICATED');
    assert.equal(n1.peer('n2').state === 'ready', false, 'n1 has no connection to "n2"');
    await impostor.stop({ graceMs: 0 });

    // a raw client with n3's certificate, claiming n2, with its call in the same flight as its HELLO: never served
    const raw = await rawTlsCall(t, n1.url!, { ca: pki.ca, key: pki.node('n3').key, cert: pki.node('n3').cert, checkServerIdentity: () => undefined }, { nodeName: 'n2', label: 'control' });
    assert.ok(raw.secured);
    assert.equal(calls.count, 0, 'no handler ran for the impostor');
  });

  void test('T-Z1 wrong SAN, dialer side: the node found at n1\'s address holds n3\'s certificate; the dial fails UNAUTHENTICATED during TLS, logged at once with the name dialed and the certificate\'s names; no handler runs', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const serverCalls = { count: 0 };
    // it calls itself n1 and knows n4 as a peer: only its certificate gives it away
    const fake = await tlsNode(t, { name: 'n1', tls: nodeTls('n1', pki.node('n3')), listen: 'tls://127.0.0.1:0', peers: { n4: null } }, [], serverCalls);
    const logs: string[] = [];
    const n4 = await tlsNode(t, { name: 'n4', peers: { n1: fake.url! }, reconnect: { ...FAST_RECONNECT, maxDelayMs: 300 } }, logs);
    await until(() => logs.some((l) => l.includes('UNAUTHENTICATED')), 3_000, 'n4 to report the refused certificate');
    const line = logs.find((l) => l.includes('UNAUTHENTICATED'))!;
    assert.match(line, /^warn peer n1 \(control\): 1 failed connection attempt\(s\) in a row; last: UNAUTHENTICATED: dial tls:\/\/127\.0\.0\.1:\d+: the node reached holds a certificate for "DNS:n3", "CN=n3", not for node "n1", the one dialed; retrying in \d+ ms$/);
    const retry = Number(/retrying in (\d+) ms/.exec(line)![1]);
    assert.ok(retry >= 150, `the longest backoff (0.5-1 x maxDelayMs 300), got ${retry} ms`);
    await sleep(200);
    assert.notEqual(n4.peer('n1').state, 'ready');
    assert.equal(serverCalls.count, 0);
  });

  void test('a certificate that names the node by URI, or by CN alone, is accepted; a CN is ignored once the certificate has SANs', { timeout: TEST_MS }, async (t) => {
    const pki = testPki();
    const spiffe = 'spiffe://gridwire.test/n5';
    const byUri = pki.issue({ commonName: 'anything', uris: [spiffe] });
    const byCn = pki.issue({ commonName: 'n6' });
    const cnWithSans = pki.issue({ commonName: 'n7', dnsNames: ['n7.example'] });
    const hubLogs: string[] = [];
    const hub = await tlsNode(t, { name: 'hub', listen: 'tls://127.0.0.1:0', peers: { [spiffe]: null, n6: null, n7: null } }, hubLogs);
    const n5 = await tlsNode(t, { name: spiffe, tls: nodeTls(spiffe, byUri), peers: { hub: hub.url! } });
    const n6 = await tlsNode(t, { name: 'n6', tls: nodeTls('n6', byCn), peers: { hub: hub.url! } });
    await tlsNode(t, { name: 'n7', tls: nodeTls('n7', cnWithSans), peers: { hub: hub.url! } });
    await within(Promise.all([n5.peer('hub').whenReady({ timeoutMs: 3_000 }), n6.peer('hub').whenReady({ timeoutMs: 3_000 })]), 4_000, 'n5 and n6 ready');
    assert.deepEqual((await n5.peer('hub').client(Who).whoami(null)).uris, [spiffe]);
    assert.equal((await n6.peer('hub').client(Who).whoami(null)).commonName, 'n6');
    await until(() => hubLogs.some((l) => l.includes('claims to be node "n7"')), 3_000, 'hub to refuse n7');
    assert.match(hubLogs.find((l) => l.includes('"n7"'))!, /its certificate is for "DNS:n7\.example", "CN=n7"/);
  });

  void test('addresses and options: tls with a tcp:// address, or a tls:// address without tls, is a TypeError at construction (and in addPeer); requestCert: false is refused; tls.ca is required (else Node\'s public roots would vouch for node names)', async (t) => {
    const tls = nodeTls('x');
    const cases: Array<[() => Mesh, RegExp]> = [
      [() => new Mesh({ name: 'x', tls, listen: 'tcp://127.0.0.1:0' }), /mesh "x" has tls options, so its listen address must be tls:\/\/host:port/],
      [() => new Mesh({ name: 'x', tls, peers: { y: 'tcp://127.0.0.1:1' } }), /so peer "y"'s address must be tls:\/\/host:port/],
      [() => new Mesh({ name: 'x', peers: { y: 'tls://127.0.0.1:1' } }), /peer "y"'s address "tls:\/\/127\.0\.0\.1:1" is a TLS address: give mesh "x" its tls options/],
      [() => new Mesh({ name: 'x', listen: 'tls://127.0.0.1:0' }), /its listen address "tls:\/\/127\.0\.0\.1:0" is a TLS address/],
      [() => new Mesh({ name: 'x', tls: { ...tls, requestCert: false } as never }), /tls\.requestCert: false is refused for a mesh/],
      [() => new Mesh({ name: 'x', tls: { ca: testPki().ca } }), /tls\.key and tls\.cert missing/],
      [() => new Mesh({ name: 'x', tls: { key: testPki().node('x').key, cert: testPki().node('x').cert } }), /tls\.ca is required for a mesh/],
      [() => new Mesh({ name: 'x', tls: { key: testPki().node('x').key, cert: testPki().node('x').cert, requestCert: true } as never }), /tls\.ca is required for a mesh/],
      [() => new Mesh({ name: 'x', tls: { ...tls, rejectUnauthorized: false } as never }), /rejectUnauthorized: false is refused/],
    ];
    for (const [make, says] of cases) assert.throws(make, (e: Error) => e instanceof TypeError && says.test(e.message), String(says));
    const mesh = newMesh(t, { name: 'x', tls });
    assert.throws(() => mesh.addPeer('y', 'tcp://127.0.0.1:1'), (e: Error) => e instanceof TypeError && /must be tls:\/\//.test(e.message));
    assert.deepEqual(mesh.peerNames, []);
  });

  void test('a plain TCP mesh keeps its behaviour: it trusts the name in a HELLO (anyone who reaches the port may claim a peer\'s name)', { timeout: TEST_MS }, async (t) => {
    const calls = { count: 0 };
    const n1 = newMesh(t, { name: 'n1', listen: 'tcp://127.0.0.1:0', peers: { n2: null }, services: [whoService(calls)] });
    await n1.start();
    // any process at all, with no certificate, says it is n2: admitted
    const claimer = newMesh(t, { name: 'n2', peers: { n1: n1.url! }, fallbackDialAfterMs: 0 });
    await claimer.start();
    await claimer.peer('n1').whenReady({ timeoutMs: 3_000 });
    const answer = await claimer.peer('n1').client(Who).whoami(null);
    assert.deepEqual([answer.nodeName, answer.transport, answer.fingerprint256], ['n2', 'tcp', undefined]);
    assert.equal(calls.count, 1);
  });
});
