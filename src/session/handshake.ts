/**
 * The HELLO exchange of one connection: our HELLO out (our version range and settings), the peer's HELLO in (a
 * common version, its settings), the application's admission of the peer, and the timer that bounds the wait.
 * Knows nothing of streams: the session applies the peer's settings once the handshake says they are good.
 *
 * | state    | event                                           | next                                       |
 * |----------|-------------------------------------------------|--------------------------------------------|
 * | waiting  | (start) our HELLO queued, timer armed           | waiting                                    |
 * | waiting  | the peer's HELLO: no common version, malformed  | (connection error; `ready` rejects)        |
 * | waiting  | the peer's HELLO, good                          | received (timer cleared)                   |
 * | waiting  | handshakeTimeoutMs without a HELLO              | (GW_ERR_HANDSHAKE_TIMEOUT; `ready` rejects)|
 * | received | admit() returns a refusal                       | refused (`ready` rejects "refused: ...")   |
 * | received | admitted, the session applied the settings      | done (`ready` resolves)                    |
 */
import {
  FrameType,
  OUR_FEATURES,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  Status,
} from '../wire/constants.js';
import { MalformedPayloadError, ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { decodeHello, encodeHello, type HelloSettings } from '../wire/hello.js';
import type { PeerInfo } from '../transport/transport.js';
import { SessionError } from './errors.js';

/** What we know of the peer once the handshake is done. */
export interface SessionPeer extends PeerInfo {
  readonly nodeName: string;
  readonly label: string;
  /** Feature bits from the peer's HELLO. */
  readonly features: number;
}

/** The session options our HELLO announces (its features are ours, fixed), and how long we wait for the peer's. */
export interface HandshakeOptions extends Omit<HelloSettings, 'features'> {
  /** 0 waits for ever. */
  handshakeTimeoutMs: number;
}

/** The part of the outbox the handshake writes through: our HELLO is the first frame, flushed by the session. */
export interface HandshakeOutput {
  queueFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void;
}

export class Handshake {
  /** Resolves when the peer's HELLO has been accepted and the peer admitted; rejects if the handshake fails. */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: Error) => void;
  private timer: NodeJS.Timeout | undefined;
  private peerInfo: SessionPeer;
  private settings: HelloSettings | undefined;

  constructor(
    options: HandshakeOptions,
    private readonly transportPeer: PeerInfo,
    output: HandshakeOutput,
    /** Called when the peer's HELLO did not come in time. */
    onTimeout: (error: ProtocolError) => void,
  ) {
    this.peerInfo = { ...transportPeer, nodeName: '', label: '', features: 0 };
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined); // the rejection is reported to whoever awaits ready; never unhandled
    output.queueFrame(
      FrameType.HELLO,
      0,
      0,
      encodeHello({
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
        },
      }),
    );
    const timeoutMs = options.handshakeTimeoutMs;
    if (timeoutMs > 0) {
      this.timer = setTimeout(() => {
        onTimeout(new ProtocolError(ProtocolErrorCode.HANDSHAKE_TIMEOUT, `no HELLO from the peer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.timer.unref();
    }
  }

  /** The peer: its address from the transport, then its names and features from its HELLO. */
  get peer(): SessionPeer {
    return this.peerInfo;
  }

  /** The settings of the peer's HELLO, once it has been accepted. */
  get peerSettings(): HelloSettings | undefined {
    return this.settings;
  }

  /**
   * Reads the peer's HELLO and returns its settings. Throws a ProtocolError (the connection fails) for a malformed
   * HELLO (GW_ERR_BAD_HANDSHAKE) or one whose version range does not meet ours (GW_ERR_VERSION_MISMATCH).
   */
  receive(payload: Uint8Array): HelloSettings {
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
    } catch (error) {
      if (error instanceof MalformedPayloadError) throw new ProtocolError(ProtocolErrorCode.BAD_HANDSHAKE, error.message);
      throw error;
    }
    clearTimeout(this.timer);
    this.peerInfo = { ...this.transportPeer, nodeName: settings.nodeName, label: settings.label, features: settings.features };
    this.settings = settings;
    return settings;
  }

  /**
   * Asks the application whether this peer may use the session, before any of its streams is read. Returns the
   * refusal (then `ready` rejects with it), or undefined when admitted.
   */
  admit(decide: ((peer: SessionPeer) => string | undefined) | undefined): string | undefined {
    const refusal = decide?.(this.peerInfo);
    if (refusal !== undefined) this.rejectReady(new SessionError(Status.UNAVAILABLE, `refused: ${refusal}`));
    return refusal;
  }

  /** The session has applied the peer's settings: `ready` resolves. */
  succeed(): void {
    this.resolveReady();
  }

  /** The connection failed before the handshake was done: `ready` rejects with `error`. */
  fail(error: Error): void {
    clearTimeout(this.timer);
    this.rejectReady(error);
  }
}
