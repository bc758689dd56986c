/**
 * Token authentication in the handshake (the `auth` option): a dialer sends its token in its HELLO (AUTH_TOKEN); an
 * acceptor checks it, against its own token in constant time or with the application's `verify`, before it answers
 * with its HELLO, so a dialer without the right token is refused before anything of it is read. Then the
 * application's own `admit` decides. The token never leaves this module in a message, a log line or `peer`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

import { isThenable } from '../promises.js';
import { MAX_AUTH_TOKEN_BYTES, Status } from '../wire/constants.js';
import { checkFailed } from '../session/errors.js';
import type { Admission, AdmitHook, Refusal, SessionPeer } from '../session/handshake.js';
import type { Role } from '../session/role.js';

/**
 * Token authentication. `{ token }`: a dialer sends it; an acceptor requires exactly it. `{ verify }`: an acceptor
 * asks it about the token each dialer sent (true admits; anything else refuses UNAUTHENTICATED; a throw or a
 * rejection fails the handshake UNAVAILABLE, retry-safe for the dialer); a dialer cannot use it (it has no token).
 */
export type AuthOptions = { readonly token: string } | { verify(token: string, peer: SessionPeer): boolean | Promise<boolean> };

/** What util.inspect and JSON.stringify show in place of a token. */
const REDACTED = '<redacted>';

/**
 * @internal `auth: { token }` as a channel or a Mesh keeps it for every redial: the token in a private field, so that
 * util.inspect (any depth), console.log and JSON.stringify of anything that holds the options show "<redacted>".
 * `token` is a getter on the prototype, so every reader still sees an AuthOptions.
 */
export class TokenCredentials {
  readonly #token: string;

  constructor(token: string) {
    this.#token = token;
  }

  get token(): string {
    return this.#token;
  }

  toJSON(): { token: string } {
    return { token: REDACTED };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `{ token: ${REDACTED} }`;
  }
}

/**
 * @internal `options` with its `auth.token` held in TokenCredentials, for whoever keeps the options (the same object
 * when there is no token to hide). An `auth` of another shape is left as it is, for checkAuthOption to refuse.
 */
export function withSealedAuth<T extends { auth?: AuthOptions | undefined }>(options: T): T {
  const auth = options.auth as { token?: unknown; verify?: unknown } | undefined;
  if (typeof auth !== 'object' || auth === null || auth instanceof TokenCredentials) return options;
  if (typeof auth.token !== 'string' || auth.verify !== undefined) return options;
  return { ...options, auth: new TokenCredentials(auth.token) };
}

/** What a dialer is told when its credentials are refused: what to do, never the token. */
const MISSING = 'no auth token was sent: this server requires one; set auth.token';
const WRONG = 'the auth token was refused; set auth.token to the token this server accepts';
/** What it is told when verify() failed to run: nothing about its token, and it may retry. */
const NOT_CHECKED = 'the server could not check credentials';

/**
 * @internal Throws for an `auth` option that is not one of the two shapes: a TypeError (a RangeError for a token's
 * length) that names `auth.token` or `auth.verify`, never the token. `dialing`: also refuses `{ verify }`.
 */
export function checkAuthOption(auth: unknown, dialing = false): void {
  if (auth === undefined) return;
  if (typeof auth !== 'object' || auth === null) throw new TypeError('auth must be { token } or { verify(token, peer) }');
  const { token, verify } = auth as { token?: unknown; verify?: unknown };
  if ((token === undefined) === (verify === undefined)) throw new TypeError('auth must have exactly one of auth.token and auth.verify');
  if (verify !== undefined) {
    if (typeof verify !== 'function') throw new TypeError('auth.verify must be a function (token, peer) => boolean | Promise<boolean>');
    if (dialing) throw new TypeError('auth.verify checks the tokens of dialers that connect to us; to dial (connect, channel, Mesh), give auth.token');
    return;
  }
  if (typeof token !== 'string') throw new TypeError('auth.token must be a string');
  const bytes = Buffer.byteLength(token);
  if (bytes === 0 || bytes > MAX_AUTH_TOKEN_BYTES) throw new RangeError(`auth.token must be 1 to ${MAX_AUTH_TOKEN_BYTES} UTF-8 bytes, got ${bytes}`);
}

/** @internal The token a dialer's HELLO carries, UTF-8; undefined for an acceptor or without `auth.token`. */
export function helloToken(auth: AuthOptions | undefined, role: Role): Uint8Array | undefined {
  if (role !== 'dialer' || auth === undefined || !('token' in auth)) return undefined;
  return Buffer.from(auth.token, 'utf8');
}

/**
 * @internal The session's admission check of a side: an acceptor with `auth` checks the dialer's token first (who
 * cannot prove it may connect is refused UNAUTHENTICATED, whoever it says it is), then `admit` decides. Undefined
 * when there is nothing to check.
 */
export function admissionOf(auth: AuthOptions | undefined, admit: ((peer: SessionPeer) => string | Refusal | undefined) | undefined, role: Role): AdmitHook | undefined {
  if (role !== 'acceptor' || auth === undefined) return admit;
  return (peer, token) => {
    const verdict = checkToken(auth, peer, token);
    if (isThenable(verdict)) return verdict.then((refusal) => refusal ?? admit?.(peer));
    return verdict ?? admit?.(peer);
  };
}

/** The dialer's token against `auth`: a refusal, or undefined when it may connect; a promise when `verify` answers later. */
function checkToken(auth: AuthOptions, peer: SessionPeer, token: Uint8Array | undefined): Refusal | undefined | PromiseLike<Admission> {
  if (token === undefined || token.length === 0) return { status: Status.UNAUTHENTICATED, reason: MISSING };
  if ('token' in auth) return tokenMatches(auth.token, token) ? undefined : { status: Status.UNAUTHENTICATED, reason: WRONG };
  let text: string;
  try {
    text = utf8Strict.decode(token);
  } catch {
    // verify() takes a string: bytes that are not UTF-8 were never a token it gave out
    return { status: Status.UNAUTHENTICATED, reason: WRONG, detail: 'the token is not UTF-8' };
  }
  try {
    const answer: unknown = auth.verify(text, peer);
    // inside the try: reading `then`, or calling a thenable's, may throw
    if (isThenable(answer)) return Promise.resolve(answer).then(verdictOf, verifyFailed);
    return verdictOf(answer);
  } catch (error) {
    return verifyFailed(error);
  }
}

function verdictOf(ok: unknown): Refusal | undefined {
  return ok === true ? undefined : { status: Status.UNAUTHENTICATED, reason: WRONG };
}

/**
 * verify() threw or rejected (its backend is down?): UNAVAILABLE, since it says nothing about the token; our log
 * names what was thrown, never its message (which may hold the token, in any encoding).
 */
function verifyFailed(error: unknown): Refusal {
  return checkFailed(error, 'auth.verify', NOT_CHECKED, false);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * @internal True when `got` is exactly `expected` (UTF-8). Compares the SHA-256 digests of both with
 * crypto.timingSafeEqual: the time taken depends on neither how much of the token matched nor its length (the
 * digests are always 32 bytes).
 */
export function tokenMatches(expected: string, got: Uint8Array): boolean {
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(got).digest();
  return timingSafeEqual(a, b);
}
