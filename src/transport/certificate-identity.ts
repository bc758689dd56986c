/**
 * A verified peer certificate as a PeerIdentity: its subject, its subjectAltName entries by kind (DNS, URI, IP), its
 * SHA-256 fingerprint and its expiry. Only ever given a certificate that passed verification; knows nothing of
 * sessions or meshes.
 *
 * Node gives subjectAltName as one string, `DNS:a, URI:spiffe://x, IP Address:127.0.0.1`, and writes a value that
 * holds a comma, a quote, a backslash or a control character as a JSON string (`DNS:"a, DNS:b"`), so that no
 * certificate can smuggle an entry into the list by naming itself `a, DNS:b`. The parser below honours that quoting,
 * and reads a list it cannot parse as having no names at all: a name check then refuses, never admits by mistake.
 */
import type { PeerCertificate } from 'node:tls';
import type { PeerIdentity } from './transport.js';

/** One subjectAltName entry: its kind as Node prints it (`DNS`, `URI`, `IP Address`, `email`...) and its value. */
export interface AltName {
  readonly kind: string;
  readonly value: string;
}

/** What Node writes a value as a JSON string for: a separator, a quote, a backslash, a control character. */
// eslint-disable-next-line no-control-regex -- control characters are part of what is matched
const NEEDS_QUOTES = /[,"'\\\u0000-\u001f\u007f]/;

/**
 * Splits Node's subjectAltName string into its entries, or returns undefined when it is not in Node's form (then the
 * certificate is treated as naming nothing).
 */
export function parseSubjectAltName(text: string): AltName[] | undefined {
  const entries: AltName[] = [];
  if (text === '') return entries;
  let at = 0;
  for (;;) {
    const colon = text.indexOf(':', at);
    if (colon < 0) return undefined;
    const kind = text.slice(at, colon);
    if (kind === '' || kind.includes(',')) return undefined;
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = endOfJsonString(text, colon + 1);
      if (end < 0) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        return undefined;
      }
    } else {
      const comma = text.indexOf(', ', colon + 1);
      end = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, end);
      if (NEEDS_QUOTES.test(value)) return undefined; // Node would have quoted it
    }
    entries.push({ kind, value });
    if (end === text.length) return entries;
    if (!text.startsWith(', ', end)) return undefined;
    at = end + 2; // an entry must follow: a trailing separator is not Node's form either
  }
}

/** The index just past the JSON string literal that opens at `start` (a `"`), or -1 if it does not close. */
function endOfJsonString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return -1;
}

/** The identity in a peer certificate (`tlsSocket.getPeerCertificate()`), or undefined when the peer sent none. */
export function identityOf(cert: PeerCertificate | null | undefined): PeerIdentity | undefined {
  // getPeerCertificate() gives {} when the peer presented no certificate
  if (cert === null || cert === undefined || cert.raw === undefined) return undefined;
  const altNames = parseSubjectAltName(cert.subjectaltname ?? '') ?? [];
  const valuesOf = (kind: string): readonly string[] => Object.freeze(altNames.filter((n) => n.kind === kind).map((n) => n.value));
  // no prototype: an attribute named __proto__ is an attribute, nothing more
  const subject = Object.create(null) as Record<string, string | readonly string[]>;
  for (const [name, value] of Object.entries((cert.subject ?? {}) as Record<string, string | string[]>)) {
    subject[name] = Array.isArray(value) ? Object.freeze([...value]) : value;
  }
  const cn = subject['CN'];
  return Object.freeze({
    subject: Object.freeze(subject),
    ...(typeof cn === 'string' ? { commonName: cn } : {}),
    dnsNames: valuesOf('DNS'),
    uris: valuesOf('URI'),
    ips: valuesOf('IP Address'),
    fingerprint256: cert.fingerprint256,
    validTo: new Date(cert.valid_to),
    raw: cert.raw,
  });
}
