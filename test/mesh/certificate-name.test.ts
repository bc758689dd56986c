/**
 * The rule that binds a mesh node's name to its certificate (src/mesh/certificate-name.ts): a SAN DNS or URI entry
 * equal to the name, or, only for a certificate with no DNS or URI entry, a CN equal to it; exact comparison.
 */
import assert from 'node:assert/strict';
import type { PeerCertificate } from 'node:tls';
import { describe, test } from 'node:test';

import { certificateIsFor, certificateNames, dialedNodeMismatch, dialerNameRefusal } from '../../src/mesh/certificate-name.js';
import type { PeerIdentity } from '../../src/transport/transport.js';
import { Status } from '../../src/wire/constants.js';

function identity(names: { cn?: string; dns?: string[]; uris?: string[] }): PeerIdentity {
  return {
    subject: names.cn === undefined ? {} : { CN: names.cn },
    ...(names.cn === undefined ? {} : { commonName: names.cn }),
    dnsNames: names.dns ?? [],
    uris: names.uris ?? [],
    ips: [],
    fingerprint256: 'AA:BB',
    validTo: new Date(0),
    raw: new Uint8Array(0),
  };
}

void describe('a node name bound to its certificate', () => {
  void test('a SAN DNS entry or a SAN URI entry equal to the name', () => {
    assert.ok(certificateIsFor(identity({ cn: 'x', dns: ['n1', 'n1.cluster'] }), 'n1'));
    assert.ok(certificateIsFor(identity({ uris: ['spiffe://cluster/n1'] }), 'spiffe://cluster/n1'));
    assert.ok(!certificateIsFor(identity({ uris: ['spiffe://cluster/n1'] }), 'n1'), 'a URI is matched whole');
  });

  void test('the CN only when the certificate has no DNS or URI entry', () => {
    assert.ok(certificateIsFor(identity({ cn: 'n1' }), 'n1'));
    assert.ok(!certificateIsFor(identity({ cn: 'n1', dns: ['n3'] }), 'n1'), 'a certificate with SANs is not matched by its CN');
    assert.ok(!certificateIsFor(identity({ cn: 'n1', uris: ['spiffe://cluster/n3'] }), 'n1'));
  });

  void test('exact: no case folding, no wildcards, no prefix or suffix', () => {
    assert.ok(!certificateIsFor(identity({ dns: ['N1'] }), 'n1'));
    assert.ok(!certificateIsFor(identity({ dns: ['*'] }), 'n1'));
    assert.ok(!certificateIsFor(identity({ dns: ['*.cluster'] }), 'n1.cluster'));
    assert.ok(!certificateIsFor(identity({ dns: ['n1'] }), 'n1.'));
    assert.ok(!certificateIsFor(identity({ dns: ['n10'] }), 'n1'));
    assert.ok(!certificateIsFor(identity({ dns: ['n3, DNS:n1'] }), 'n1'), 'one quoted entry is one name');
  });

  void test('the acceptor\'s refusal names the claimed name and the certificate\'s names; none for a match', () => {
    assert.equal(dialerNameRefusal('n2', identity({ cn: 'n2', dns: ['n2'] })), undefined);
    assert.equal(dialerNameRefusal('n2', identity({ cn: 'n3', dns: ['n3'] })), 'it claims to be node "n2" but its certificate is for "DNS:n3", "CN=n3"');
    assert.equal(dialerNameRefusal('n2', undefined), 'it claims to be node "n2" but its certificate is for no certificate');
    assert.match(certificateNames(identity({ dns: Array.from({ length: 20 }, (_, i) => `d${i}`) })), / and 12 more$/);
    assert.equal(certificateNames(identity({})), 'a certificate that names nobody');
  });

  void test('the dialer\'s check (checkServerIdentity): UNAUTHENTICATED naming the node dialed and the names found', () => {
    const cert = (san: string, cn: string): PeerCertificate => ({ subject: { CN: cn }, subjectaltname: san, fingerprint256: 'AA', valid_to: 'Jan 1 00:00:00 2030 GMT', raw: Buffer.alloc(1) }) as unknown as PeerCertificate;
    assert.equal(dialedNodeMismatch('n1', cert('DNS:n1', 'n1')), undefined);
    const mismatch = dialedNodeMismatch('n1', cert('DNS:n3', 'n3'));
    assert.equal(mismatch?.status, Status.UNAUTHENTICATED);
    assert.equal(mismatch?.message, 'the node reached holds a certificate for "DNS:n3", "CN=n3", not for node "n1", the one dialed');
    assert.ok(dialedNodeMismatch('n1', cert('DNS:"n3, DNS:n1"', 'n3')) !== undefined, 'a smuggled entry does not match');
  });
});
