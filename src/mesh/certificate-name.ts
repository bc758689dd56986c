/**
 * A mesh node's name bound to its certificate. Over TLS a node is who its certificate says, not whatever name its
 * HELLO claims: the certificate must name the node, by a subjectAltName DNS entry equal to the name, or a URI entry
 * equal to it (a SPIFFE id as the node name), or, only when the certificate has no DNS or URI entry at all, by a
 * common name equal to it (CN is what older PKIs put names in; once a certificate has SANs, its CN is ignored, as
 * RFC 6125 has it for host names). Names compare exactly: no case folding and no wildcards, since a node name is an
 * identifier, and a wildcard certificate must not let its holder be any node it likes.
 *
 * Both ends of a mesh connection check: the dialer that the node it reached holds a certificate for the name it
 * dialed (during TLS, in place of the host name check: mesh identity is the name, not the address), the acceptor that
 * the node that dialed holds one for the name in its HELLO. Knows nothing of sessions; only of names and identities.
 */
import type { PeerCertificate } from 'node:tls';
import { identityOf } from '../transport/certificate-identity.js';
import { TlsFailure } from '../transport/tls-failures.js';
import type { PeerIdentity } from '../transport/transport.js';
import { Status } from '../wire/constants.js';

/** True when `identity` is a certificate for the node `name` (the rule in the header). */
export function certificateIsFor(identity: PeerIdentity, name: string): boolean {
  if (identity.dnsNames.includes(name) || identity.uris.includes(name)) return true;
  return identity.dnsNames.length === 0 && identity.uris.length === 0 && identity.commonName === name;
}

/** Longest list of a certificate's names in a message: a certificate may carry any number of them. */
const MAX_NAMES_SHOWN = 8;

/** The names a certificate could match a node by, for a message: `DNS:n3, URI:spiffe://x/n3, CN=n3`. */
export function certificateNames(identity: PeerIdentity | undefined): string {
  if (identity === undefined) return 'no certificate';
  const names = [...identity.dnsNames.map((n) => `DNS:${n}`), ...identity.uris.map((u) => `URI:${u}`)];
  if (identity.commonName !== undefined) names.push(`CN=${identity.commonName}`);
  if (names.length === 0) return 'a certificate that names nobody';
  const shown = names.slice(0, MAX_NAMES_SHOWN).map((n) => JSON.stringify(n)).join(', ');
  return names.length > MAX_NAMES_SHOWN ? `${shown} and ${names.length - MAX_NAMES_SHOWN} more` : shown;
}

/**
 * The acceptor's check: why the node that dialed, claiming `claimed` in its HELLO, is refused, or undefined when its
 * certificate is for that name.
 */
export function dialerNameRefusal(claimed: string, identity: PeerIdentity | undefined): string | undefined {
  if (identity !== undefined && certificateIsFor(identity, claimed)) return undefined;
  return `it claims to be node ${JSON.stringify(claimed)} but its certificate is for ${certificateNames(identity)}`;
}

/**
 * The dialer's check, as a TLS `checkServerIdentity`: an error when the node reached does not hold a certificate for
 * `expected`, the node dialed; undefined when it does.
 */
export function dialedNodeMismatch(expected: string, cert: PeerCertificate): TlsFailure | undefined {
  const identity = identityOf(cert);
  if (identity !== undefined && certificateIsFor(identity, expected)) return undefined;
  return new TlsFailure(Status.UNAUTHENTICATED, `the node reached holds a certificate for ${certificateNames(identity)}, not for node ${JSON.stringify(expected)}, the one dialed`);
}
