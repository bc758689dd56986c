/**
 * The HELLO exchange of one connection: the dialer's HELLO out at once, the peer's HELLO in (a common version, its
 * settings), the application's admission of the peer (which may answer later: a token checked by a service), the
 * acceptor's HELLO out only once it has admitted the dialer, and the timer that bounds all of it. Knows nothing of
 * streams: the session applies the peer's settings once the handshake says the peer is admitted.
 *
 * | state     | event                                                | next                                          |
 * |-----------|------------------------------------------------------|-----------------------------------------------|
 * | waiting   | (start) a dialer's HELLO queued (not kept); timer    | waiting                                       |
 * |           | armed                                                |                                               |
 * | waiting   | the peer's HELLO: malformed, or no common version    | failed: GOAWAY PROTOCOL_ERROR or              |
 * |           |                                                      | VERSION_MISMATCH, no HELLO of ours            |
 * | waiting   | the peer's GOAWAY (a dialer: the acceptor refused    | failed, with what the GOAWAY says (or         |
 * |           | us), or the connection ends                          | UNAVAILABLE)                                  |
 * | waiting   | the peer's HELLO, good                               | admitting                                     |
 * | admitting | admit() admits (at once, or its promise settles)     | admitted: an acceptor queues its HELLO        |
 * | admitting | admit() refuses (a reason, or a Refusal)             | failed: AdmissionError, GOAWAY                |
 * |           |                                                      | UNAUTHENTICATED or REFUSED, no HELLO          |
 * | admitting | admit() throws or rejects, or its then() throws (the | failed: AdmissionError UNAVAILABLE, GOAWAY    |
 * |           | check could not run); a dialer's admit() answers     | INTERNAL_ERROR, no HELLO                      |
 * |           | with a promise                                       |                                               |
 * | admitting | the peer's GOAWAY (it gave up), the connection ends, | failed: a later answer is dropped (no HELLO   |
 * |           | or the check itself closed the session before        | after our GOAWAY)                             |
 * |           | answering                                            |                                               |
 * | admitted  | the session applied the settings: succeed()          | done (timer cleared; `ready` resolves)        |
 * | waiting,  | handshakeTimeoutMs since the start (a peer that      | failed (GW_ERR_HANDSHAKE_TIMEOUT)             |
 * | admitting | sends nothing, an admission that never answers)      |                                               |
 * | any but   | fail(): the session failed or closed first           | failed (`ready` rejects; a later answer is    |
 * | done      |                                                      | dropped)                                      |
 *
 * While admitting, the session reads nothing but the peer's GOAWAY (session.ts): a dialer being admitted is served
 * nothing, not even a PING answer. A dialer admits the acceptor at once: the acceptor may start calls right after its
 * HELLO, so an admission answer that is a promise fails a dialer's handshake (the layers above never give one).
 */
import { FrameType, OUR_FEATURES, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN } from '../wire/constants.js';
import { MalformedPayloadError, ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { decodeHello, encodeHello, type HelloSettings } from '../wire/hello.js';
import type { PeerInfo } from '../transport/transport.js';
import { isThenable } from '../promises.js';
import { AdmissionError, checkFailed, internalError, type Refusal } from './errors.js';
import type { Role } from './role.js';

/** What we know of the peer once the handshake is done. Its credentials are never part of it. */
export interface SessionPeer extends PeerInfo {
  readonly nodeName: string;
  readonly label: string;
  /** Feature bits from the peer's HELLO. */
  readonly features: number;
}

/** The facts of the peer's HELLO once accepted: the protocol version both speak and the settings it announced. */
export interface PeerHello {
  readonly protocolVersion: number;
  readonly settings: Readonly<Omit<HelloSettings, 'authToken'>>;
}

/** The answer of an admission check: a refusal (a reason, or a Refusal), or undefined to admit. */
export type Admission = string | Refusal | undefined;

/**
 * Decides whether the peer may use the session, once its HELLO is accepted and before anything else of it is read.
 * `authToken` is the AUTH_TOKEN of its HELLO (undefined when it sent none), for this call only: it is not kept. An
 * acceptor's check may answer later (a promise); a dialer's must answer at once. A throw or a rejection fails the
 * handshake as UNAVAILABLE (GOAWAY INTERNAL_ERROR): the check could not run, which says nothing about the peer.
 */
export type AdmitHook = (peer: SessionPeer, authToken: Uint8Array | undefined) => Admission | PromiseLike<Admission>;

/** The session options our HELLO announces (its features are ours, fixed), and how long the handshake may take. */
export interface HandshakeOptions extends Omit<HelloSettings, 'features' | 'authToken'> {
  /** 0 waits for ever. */
  handshakeTimeoutMs: number;
}

/**
 * The part of the outbox the handshake writes through: our HELLO is the first frame we send, flushed by the session
 * (a dialer's once the transport is attached, an acceptor's once the dialer is admitted).
 */
export interface HandshakeOutput {
  queueFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void;
}

const enum State {
  WAITING,
  ADMITTING,
  ADMITTED,
  DONE,
  FAILED,
}

export class Handshake {
  /** Resolves when the peer's HELLO has been accepted and the peer admitted; rejects if the handshake fails. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: Error) => void;
  private state = State.WAITING;
  private timer: NodeJS.Timeout | undefined;
  private peerInfo: SessionPeer;
  private settings: HelloSettings | undefined;
  private version = 0;
  /** The AUTH_TOKEN of the peer's HELLO, from receive() until admit() hands it to the check. */
  private peerToken: Uint8Array | undefined;
  /** An acceptor's HELLO, queued once it admits the dialer; a dialer's is queued at once and not kept (its token). */
  private readonly hello: Uint8Array | undefined;

  constructor(
    options: HandshakeOptions,
    private readonly transportPeer: PeerInfo,
    private readonly role: Role,
    private readonly output: HandshakeOutput,
    /** A dialer's credentials for its HELLO (its auth.token, UTF-8); an acceptor sends none. */
    authToken: Uint8Array | undefined,
    /** The handshake failed on its own: it took too long, or an admission that answered later broke. */
    private readonly onFailure: (error: ProtocolError) => void,
  ) {
    this.peerInfo = { ...transportPeer, nodeName: '', label: '', features: 0 };
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined); // the rejection is reported to whoever awaits ready; never unhandled
    const hello = encodeHello({
      versionMin: PROTOCOL_VERSION_MIN,
      versionMax: PROTOCOL_VERSION_MAX,
      settings: {
        maxFrameBytes: options.maxFrameBytes,
        initialStreamWindow: options.initialStreamWindow,
        initialMessageWindow: options.initialMessageWindow,
        connectionWindow: options.connectionWindow,
        maxConcurrentStreams: options.maxConcurrentStreams,
        maxMessageBytes: options.maxMessageBytes,
        features: OUR_FEATURES,
        nodeName: options.nodeName,
        label: options.label,
        authToken: role === 'dialer' ? authToken : undefined,
      },
    });
    // the dialer speaks first; the acceptor answers only a dialer it has admitted
    if (role === 'dialer') output.queueFrame(FrameType.HELLO, 0, 0, hello);
    else this.hello = hello;
    const timeoutMs = options.handshakeTimeoutMs;
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => {
        const what = this.state === State.ADMITTING ? 'its admission check did not answer' : 'no HELLO from the peer';
        this.onFailure(new ProtocolError(ProtocolErrorCode.HANDSHAKE_TIMEOUT, `${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.timer.unref();
    }
  }

  /** The peer: its address from the transport, then its names and features from its HELLO. */
  get peer(): SessionPeer {
    return this.peerInfo;
  }

  /** The settings of the peer's HELLO, once it has been accepted (without its credentials). */
  get peerSettings(): HelloSettings | undefined {
    return this.settings;
  }

  /** The protocol version this connection speaks, once the peer's HELLO has been accepted (0 before). */
  get protocolVersion(): number {
    return this.version;
  }

  /** True once the peer's HELLO has been accepted: a second one is a protocol error. */
  get helloReceived(): boolean {
    return this.settings !== undefined;
  }

  /**
   * Reads the peer's HELLO. Throws a ProtocolError (the connection fails) for a malformed HELLO
   * (GW_ERR_BAD_HANDSHAKE) or one whose version range does not meet ours (GW_ERR_VERSION_MISMATCH).
   */
  receive(payload: Uint8Array): void {
    let settings: HelloSettings;
    try {
      const hello = decodeHello(payload);
      const version = Math.min(hello.versionMax, PROTOCOL_VERSION_MAX);
      if (version < Math.max(hello.versionMin, PROTOCOL_VERSION_MIN)) {
        throw new ProtocolError(
          ProtocolErrorCode.VERSION_MISMATCH,
          `no common protocol version: ours ${PROTOCOL_VERSION_MIN}..${PROTOCOL_VERSION_MAX}, theirs ${hello.versionMin}..${hello.versionMax}`,
        );
      }
      settings = hello.settings;
      this.version = version;
    } catch (error) {
      if (error instanceof MalformedPayloadError) throw new ProtocolError(ProtocolErrorCode.BAD_HANDSHAKE, error.message);
      throw error;
    }
    // an acceptor keeps the token of the dialer's HELLO for its admission check only (admit() drops it); a dialer
    // ignores one in the acceptor's HELLO (acceptors send none)
    this.peerToken = this.role === 'acceptor' ? settings.authToken : undefined;
    settings.authToken = undefined;
    this.peerInfo = { ...this.transportPeer, nodeName: settings.nodeName, label: settings.label, features: settings.features };
    this.settings = settings;
    this.state = State.ADMITTING;
  }

  /**
   * Asks the application whether this peer may use the session, and calls `done` with the answer: undefined once the
   * peer is admitted (an acceptor's HELLO is then queued), or the error the connection fails with (an AdmissionError).
   * At once when `decide` answers at once; when it answers with a promise, once that settles, unless the handshake
   * failed meanwhile (then `done` is never called). A throw or a rejection fails the handshake UNAVAILABLE; what was
   * thrown is said in our log, never to the peer.
   */
  admit(decide: AdmitHook | undefined, done: (error: ProtocolError | undefined) => void): void {
    const token = this.peerToken;
    this.peerToken = undefined; // not kept past its check
    let outcome: ProtocolError | undefined;
    try {
      // all of it inside the try: reading an answer's `then`, or calling it, runs application code that may throw
      const answer = decide?.(this.peerInfo, token);
      if (!isThenable<Admission>(answer)) {
        outcome = this.settle(answer);
      } else if (this.role === 'dialer') {
        answer.then(undefined, ignore); // failed below whatever it says: its rejection must not go unhandled
        outcome = admitFailed(new Error("a dialer's admission check must answer at once, not with a promise"));
      } else {
        answer.then(
          (value) => this.settleLater(done, () => this.settle(value)),
          (error: unknown) => this.settleLater(done, () => admitFailed(error)),
        );
        return;
      }
    } catch (error) {
      outcome = admitFailed(error);
    }
    done(outcome);
  }

  /** The session has applied the peer's settings: `ready` resolves. */
  succeed(): void {
    clearTimeout(this.timer);
    this.state = State.DONE;
    this.resolveReady();
  }

  /** The connection failed before the handshake was done: `ready` rejects with `error`. */
  fail(error: Error): void {
    clearTimeout(this.timer);
    this.state = State.FAILED;
    this.rejectReady(error);
  }

  /** An answer that came later: dropped if the handshake failed meanwhile; a fault in `done` fails the session. */
  private settleLater(done: (error: ProtocolError | undefined) => void, answer: () => ProtocolError | undefined): void {
    if (this.state !== State.ADMITTING) return;
    try {
      done(answer());
    } catch (error) {
      this.onFailure(internalError(error));
    }
  }

  /**
   * The admission's answer as the error the connection fails with, or undefined once admitted (HELLO queued). Nothing
   * when the handshake is no longer admitting: the check itself closed the session (then no HELLO follows our GOAWAY).
   */
  private settle(answer: Admission): ProtocolError | undefined {
    if (this.state !== State.ADMITTING) return undefined;
    if (answer !== undefined) return new AdmissionError(typeof answer === 'string' ? { reason: answer } : answer);
    this.state = State.ADMITTED;
    if (this.hello !== undefined) this.output.queueFrame(FrameType.HELLO, 0, 0, this.hello);
    return undefined;
  }
}

/** An admission check that threw or rejected: the peer may retry (UNAVAILABLE); our log says what it threw. */
function admitFailed(thrown: unknown): AdmissionError {
  return new AdmissionError(checkFailed(thrown, 'it', 'the admission check failed', true));
}

function ignore(): void {}

export type { Refusal };
