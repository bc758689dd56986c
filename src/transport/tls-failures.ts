/**
 * What a failed TLS connection means, in words a user can act on, and with the status a dialer reports: Node and
 * OpenSSL say `CERT_HAS_EXPIRED`, `wrong version number` or `socket hang up`; we say "the server's certificate has
 * expired" or "the server does not speak TLS here (a tcp:// or ws:// port?)". Nothing here holds a key or echoes an option's value: the
 * words name options (`tls.ca`, `tls.cert`), never their contents.
 *
 * Status on the dialing side: a certificate refused either way (by our check, or by the server's TLS alert) is
 * UNAUTHENTICATED and a TLS/plain or TLS-version mismatch FAILED_PRECONDITION (retrying will not heal either: a
 * channel or mesh waits its longest backoff between such dials, as for a protocol version mismatch); anything else
 * (refused, reset, timed out, a server that hung up right after TLS without an alert) UNAVAILABLE.
 */
import type { TLSSocket } from 'node:tls';
import { Status } from '../wire/constants.js';

/** A TLS connection that failed, with the status the dialer reports it with. */
export class TlsFailure extends Error {
  override readonly name = 'TlsFailure';
  constructor(
    readonly status: Status,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** OpenSSL's verification codes, as "the certificate ..." would go on. */
const CERTIFICATE_PROBLEMS: Readonly<Record<string, string>> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'is not signed by a CA this side trusts (tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT: 'is not signed by a CA this side trusts (tls.ca)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'is not signed by a CA this side trusts (tls.ca)',
  SELF_SIGNED_CERT_IN_CHAIN: 'is not signed by a CA this side trusts (tls.ca)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is self-signed and not one this side trusts (tls.ca)',
  CERT_SIGNATURE_FAILURE: 'has a signature that does not verify',
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet (or a clock is wrong)',
  CERT_REVOKED: 'is revoked (tls.crl)',
  INVALID_CA: 'is signed by a certificate that may not act as a CA',
  INVALID_PURPOSE: 'may not be used for this side of a TLS connection (extendedKeyUsage)',
  CERT_CHAIN_TOO_LONG: 'has a chain that is too long',
  PATH_LENGTH_EXCEEDED: 'has a chain that is too long',
};

/** Why the certificate with verification code `code` is not accepted, or undefined when `code` is not one. */
export function certificateProblem(code: string | undefined): string | undefined {
  return code === undefined ? undefined : CERTIFICATE_PROBLEMS[code];
}

/** The OpenSSL reason in an error's message (`...:SSL routines:fn:wrong version number:...`), else its code or message. */
function reasonOf(error: Error): string {
  const reason = (error as { reason?: unknown }).reason;
  if (typeof reason === 'string') return reason;
  const inMessage = /:SSL routines:[^:]*:([^:]+):/.exec(error.message)?.[1];
  return inMessage ?? (error as NodeJS.ErrnoException).code ?? error.message;
}

function codeOf(error: Error): string | undefined {
  return (error as NodeJS.ErrnoException).code;
}

/** The peer's bytes are not a TLS record: a plain TCP client on a TLS port, or a TLS client on a plain one. */
function isNotTls(reason: string): boolean {
  return /wrong version number|http request|https proxy request|packet length too long|unknown protocol|record layer failure/.test(reason);
}

/** The two sides share no TLS version (one asks for TLS 1.3, the other offers at most 1.2...). */
function isVersionMismatch(reason: string): boolean {
  return /unsupported protocol|protocol version|no protocols available|version too low/.test(reason);
}

/**
 * A dial that failed before its TLS handshake was done (the TLS client's 'error' before 'secureConnect'), as the
 * error `connect()` reports.
 */
export function dialFailure(url: string, error: Error): Error {
  if (error instanceof TlsFailure) return new TlsFailure(error.status, `dial ${url}: ${error.message}`, { cause: error });
  const code = codeOf(error);
  const problem = certificateProblem(code);
  if (problem !== undefined) return new TlsFailure(Status.UNAUTHENTICATED, `dial ${url}: the server's certificate ${problem} (${code})`, { cause: error });
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new TlsFailure(Status.UNAUTHENTICATED, `dial ${url}: the server's certificate is not for the name dialed (set tls.servername if it is another): ${error.message}`, { cause: error });
  }
  const reason = reasonOf(error);
  if (isNotTls(reason)) {
    const plain = url.startsWith('wss:') ? 'ws://' : 'tcp:// or ws://'; // wss:// (transport/websocket.ts) shares this
    return new TlsFailure(Status.FAILED_PRECONDITION, `dial ${url}: the server does not speak TLS here (${reason}): a ${plain} port?`, { cause: error });
  }
  if (isVersionMismatch(reason)) {
    return new TlsFailure(Status.FAILED_PRECONDITION, `dial ${url}: the server and this side share no TLS version (${reason}); see tls.minVersion and tls.maxVersion on both sides`, { cause: error });
  }
  const refusal = alertRefusal(reason);
  if (refusal !== undefined) return new TlsFailure(Status.UNAUTHENTICATED, `dial ${url}: ${refusal}`, { cause: error });
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return new Error(`dial ${url}: the server closed the connection during the TLS handshake (${error.message}); its log says why (a TLS version or certificate it does not accept?)`, { cause: error });
  }
  return new Error(`dial ${url}: ${error.message}`, { cause: error });
}

/** The server's alert says it refused our certificate (or requires one): the words for it, else undefined. */
function alertRefusal(reason: string): string | undefined {
  if (/alert certificate required/.test(reason)) return 'the server requires a client certificate: set tls.cert and tls.key';
  if (/alert (unknown ca|bad certificate|certificate expired|certificate revoked|certificate unknown|unsupported certificate|access denied)/.test(reason)) {
    return `the server refused our client certificate (${reason}); its log says why`;
  }
  return undefined;
}

/**
 * Why a dialed TLS connection ended right after its handshake, before the server sent a byte. Only a TLS alert says
 * our certificate was refused (or is required): UNAUTHENTICATED then. A silent close says nothing certain: a server
 * that refuses a client certificate after the handshake (TLS 1.3 lets the client finish its side first) hangs up
 * like one whose handshake deadline passed, one that evicted us for maxPendingHandshakes, or a TLS endpoint that is
 * not gridwire. That is UNAVAILABLE (an ordinary failed dial, retried at the usual backoff, not the longest), with the
 * likely causes as a hint. `error` is what the socket reported, if anything.
 */
export function refusedAfterHandshake(presentedCertificate: boolean, error: Error | undefined): TlsFailure {
  const refusal = error === undefined ? undefined : alertRefusal(reasonOf(error));
  if (refusal !== undefined) return new TlsFailure(Status.UNAUTHENTICATED, refusal, { cause: error });
  const busy = 'or was too busy to take the connection (its handshake deadline, too many pending handshakes), or is not a gridwire server';
  const hint = presentedCertificate
    ? `it may have refused our client certificate (not signed by a CA it trusts, expired, or not a name it accepts; its log says which), ${busy}`
    : `if it requires a client certificate, set tls.cert and tls.key; it may also have been too busy to take the connection (its handshake deadline, too many pending handshakes), or is not a gridwire server`;
  return new TlsFailure(Status.UNAVAILABLE, `the server closed the connection right after the TLS handshake, before a byte: ${hint}`, { cause: error });
}

/**
 * The server's words for a TLS handshake that failed (the server TLSSocket's 'error' before 'secure'), for its one
 * log line about it.
 */
export function acceptFailure(error: Error): string {
  const reason = reasonOf(error);
  if (/http request|https proxy request/.test(reason)) return `the peer did not speak TLS: it sent an HTTP request (${reason})`;
  if (isNotTls(reason)) return `the peer did not speak TLS (${reason}): a plain tcp:// client on this TLS port?`;
  if (isVersionMismatch(reason)) return `the peer offered no TLS version this side accepts (${reason}; tls.minVersion is TLSv1.3 unless set)`;
  if (/peer did not return a certificate|certificate required/.test(reason)) return 'the peer presented no client certificate (this listener requires one: tls.requestCert)';
  if (/alert (unknown ca|bad certificate|certificate expired|certificate unknown|certificate revoked)/.test(reason)) {
    return `the peer refused this server's certificate (${reason}): does it trust our CA, is our certificate valid and for the name it dialed?`;
  }
  return `TLS handshake failed: ${reason}`;
}

/** Longest description of a certificate's names in a log line: a certificate may carry any number of them. */
const MAX_DESCRIPTION_CHARS = 300;

/**
 * A short description of a peer certificate's names for a log line (`CN=client-1, DNS:a, URI:spiffe://x`), with control
 * characters escaped: an unverified certificate says what its sender likes, line breaks included.
 */
export function describeCertificate(socket: TLSSocket): string {
  const cert = socket.getPeerCertificate();
  if (cert === null || cert.raw === undefined) return 'none';
  const cn = (cert.subject as Record<string, unknown> | undefined)?.['CN'];
  const parts = typeof cn === 'string' ? [`CN=${cn}`] : [];
  if (cert.subjectaltname) parts.push(cert.subjectaltname);
  const text = parts.join(', ') || 'no names';
  // eslint-disable-next-line no-control-regex -- control characters are what is being escaped
  const printable = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return printable.length > MAX_DESCRIPTION_CHARS ? `${printable.slice(0, MAX_DESCRIPTION_CHARS)}...` : printable;
}
