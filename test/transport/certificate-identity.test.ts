/**
 * PeerIdentity from a peer certificate (src/transport/certificate-identity.ts): Node's subjectAltName string split by
 * kind, with its JSON quoting honoured so that a certificate naming itself `a, DNS:b` does not gain the name `b`
 * (CVE-2021-44532's class), and a list that is not in Node's form read as naming nothing.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, test } from 'node:test';

import { identityOf, parseSubjectAltName } from '../../src/transport/certificate-identity.js';
import { testPki } from '../fixtures/certs.js';

void describe('subjectAltName as Node prints it', () => {
  void test('entries of every kind, separated by ", "; an IPv6 address keeps its colons', () => {
    assert.deepEqual(parseSubjectAltName('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, URI:spiffe://gridwire.test/n1'), [
      { kind: 'DNS', value: 'localhost' },
      { kind: 'IP Address', value: '127.0.0.1' },
      { kind: 'IP Address', value: '0:0:0:0:0:0:0:1' },
      { kind: 'URI', value: 'spiffe://gridwire.test/n1' },
    ]);
    assert.deepEqual(parseSubjectAltName(''), []);
  });

  void test('a quoted value is one entry, whatever it holds: "a, DNS:b" does not name b', () => {
    assert.deepEqual(parseSubjectAltName('DNS:"n3, DNS:n2", URI:"x\\u002cy"'), [
      { kind: 'DNS', value: 'n3, DNS:n2' },
      { kind: 'URI', value: 'x,y' },
    ]);
    assert.deepEqual(parseSubjectAltName('DNS:"quote \\" inside", DNS:plain'), [
      { kind: 'DNS', value: 'quote " inside' },
      { kind: 'DNS', value: 'plain' },
    ]);
  });

  void test('anything not in Node\'s form names nothing (undefined), rather than something by mistake', () => {
    for (const bad of ['DNS:"unterminated', 'no kind at all', 'DNS:a,DNS:b', 'DNS:a"b', 'DNS:"a"x, DNS:b', ':value', 'DNS:a, ']) {
      assert.equal(parseSubjectAltName(bad), undefined, bad);
    }
  });
});

/** The legacy certificate object Node's getPeerCertificate() gives, made from a PEM (the fields identityOf reads). */
function peerCertificateOf(pem: Buffer): PeerCertificate {
  const x509 = new X509Certificate(pem);
  const subject = Object.fromEntries(x509.subject.split('\n').map((line) => line.split('=') as [string, string]));
  return {
    subject,
    subjectaltname: x509.subjectAltName,
    fingerprint256: x509.fingerprint256,
    valid_to: x509.validTo,
    raw: x509.raw,
  } as unknown as PeerCertificate;
}

void describe('identityOf', () => {
  void test('the test PKI\'s client certificate: subject, common name, URI, fingerprint, expiry and DER', () => {
    const pki = testPki();
    const x509 = new X509Certificate(pki.client.cert);
    const identity = identityOf(peerCertificateOf(pki.client.cert))!;
    assert.equal(identity.subject['CN'], 'client-1');
    assert.equal(identity.commonName, 'client-1');
    assert.deepEqual(identity.dnsNames, []);
    assert.deepEqual(identity.uris, ['spiffe://gridwire.test/client-1']);
    assert.deepEqual(identity.ips, []);
    assert.equal(identity.fingerprint256, x509.fingerprint256);
    assert.equal(identity.validTo.getTime(), new Date(x509.validTo).getTime());
    assert.deepEqual(Buffer.from(identity.raw), x509.raw);
    assert.ok(Object.isFrozen(identity) && Object.isFrozen(identity.dnsNames) && Object.isFrozen(identity.subject));
  });

  void test('the server certificate: DNS and IP entries', () => {
    const identity = identityOf(peerCertificateOf(testPki().server.cert))!;
    assert.deepEqual(identity.dnsNames, ['localhost']);
    assert.deepEqual(identity.ips, ['127.0.0.1', '0:0:0:0:0:0:0:1']);
  });

  void test('no certificate ({} from getPeerCertificate), none; a subject attribute named __proto__ is just an attribute', () => {
    assert.equal(identityOf({} as PeerCertificate), undefined);
    assert.equal(identityOf(null), undefined);
    const cert = peerCertificateOf(testPki().client.cert);
    const subject = Object.create(null) as Record<string, unknown>;
    subject['__proto__'] = 'x';
    subject['CN'] = ['a', 'b'];
    const identity = identityOf({ ...cert, subject } as unknown as PeerCertificate)!;
    assert.equal(identity.subject['__proto__'], 'x');
    assert.equal(Object.getPrototypeOf(identity.subject), null);
    assert.deepEqual(identity.subject['CN'], ['a', 'b']);
    assert.equal(identity.commonName, undefined, 'two CNs: no common name');
  });

  void test('a subjectAltName Node would never print names nothing: no DNS, URI or IP entry at all', () => {
    const cert = peerCertificateOf(testPki().server.cert);
    const identity = identityOf({ ...cert, subjectaltname: 'DNS:localhost, DNS:"broken' } as PeerCertificate)!;
    assert.deepEqual([identity.dnsNames, identity.uris, identity.ips], [[], [], []]);
  });
});
