/**
 * The one small duplex interface the core (session, rpc) uses to move bytes. Each transport turns an address into
 * one of these, plus facts about the peer. Knows nothing of frames or calls.
 */

/** What a session can learn about the other end of its connection. */
export interface PeerInfo {
  /** `tcp`, `unix`, `memory`, `tls`, `ws` or `wss`. */
  readonly transport: string;
  /** The peer's address as a URL-ish string, e.g. `tcp://127.0.0.1:53122` or `unix:///run/gw.sock`. */
  readonly address: string;
  /**
   * The peer's certificate, verified by this side (TLS): on a dialer, the server's; on an acceptor, the client's when
   * the listener asked for one (`tls.requestCert`). Undefined over tcp, unix and memory, and for a TLS client that
   * presented none.
   */
  readonly identity?: PeerIdentity;
}

/** The names and facts of a verified peer certificate (only ever made from one that passed verification). */
export interface PeerIdentity {
  /** The subject's attributes (`CN`, `O`, `OU`...); an attribute that occurs more than once has an array. */
  readonly subject: Readonly<Record<string, string | readonly string[]>>;
  /** The subject's common name, when it has exactly one. */
  readonly commonName?: string;
  /** subjectAltName DNS entries. */
  readonly dnsNames: readonly string[];
  /** subjectAltName URI entries (a SPIFFE id is one). */
  readonly uris: readonly string[];
  /** subjectAltName IP addresses. */
  readonly ips: readonly string[];
  /** SHA-256 of the certificate, as colon-separated hex pairs (`AB:CD:...`). */
  readonly fingerprint256: string;
  /** When the certificate expires. */
  readonly validTo: Date;
  /** The certificate in DER form, for anything not above (`new X509Certificate(raw)`). */
  readonly raw: Uint8Array;
}

/** Callbacks a transport delivers to; set once with `attach`. */
export interface TransportSink {
  /**
   * Bytes from the peer. The chunk is the receiver's from then on (the decoder may hand out views of it for as long as
   * it likes): a transport never reuses or changes a chunk it has delivered.
   */
  onData(chunk: Uint8Array): void;
  /** The peer will send no more bytes (EOF). The transport may still accept writes until it closes. */
  onEnd(): void;
  /** The transport is fully closed; `error` is set when it closed because something failed. */
  onClose(error?: Error): void;
  /** A write that returned false has been flushed; writing may resume. */
  onDrain(): void;
}

export interface Transport {
  readonly peer: PeerInfo;
  /** Starts delivery to `sink`. Bytes that arrived before are delivered first. */
  attach(sink: TransportSink): void;
  /**
   * Writes the chunks in order (as one vectored write where possible). False means: wait for onDrain. What the other
   * end receives is never the writer's memory (a socket's bytes pass through the kernel; an in-process transport
   * copies them), so neither side's later use of its buffers changes the other's.
   */
  write(chunks: readonly Uint8Array[]): boolean;
  /** Flushes what was written, then half-closes. */
  end(): void;
  /** Closes at once, dropping unwritten bytes. */
  destroy(error?: Error): void;
  /** Optional: at most this many bytes delivered per event-loop turn (0 = no limit), so other connections get read. */
  setReadBudget?(bytes: number): void;
  /**
   * Optional: stop reading for good (the session failed and discards what arrives): a peer that keeps sending then
   * costs no CPU until the transport closes. Writes, end() and destroy() still work; EOF may go unseen.
   */
  pauseReading?(): void;
  /**
   * Optional: counts `bytes` more against this turn's read budget (setReadBudget), called from within onData: the
   * session charges for the work a chunk caused beyond its size (a chunk of many small frames costs more than its
   * bytes), so a flood of small frames yields as often as its cost, not its size, says.
   */
  chargeRead?(bytes: number): void;
  /** Optional: bytes written and not yet handed to the OS, so a session can tell a slow peer from a stalled one. */
  readonly writableLength?: number;
  /**
   * Optional: why the connection ended before the handshake was done, when the transport knows better than the session
   * (a TLS server that hangs up right after the TLS handshake has refused our certificate; the session only saw the
   * peer leave). Undefined when it has nothing to add.
   */
  explainFailure?(): Error | undefined;
}
