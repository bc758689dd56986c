/**
 * What `gridwire.inspect.v1/snapshot` answers (the types; snapshot-of.ts takes one): a look at this side's connections at one moment. Per connection its
 * peer (name, address, certificate), role, age, RTT, bytes, GOAWAY state; per stream its method and direction, state,
 * the credit it has left to send, its receive window, what it has queued, how long it has been blocked on credit
 * (now and in total) and its age; the calls in flight by method; and the stall watch's findings (stall-watch.ts): the
 * streams blocked longer than the threshold, stalled ones first, each saying which side is slow. Plain objects (JSON).
 * What a snapshot lists is bounded (snapshot-of.ts): a node with a million streams answers
 * a snapshot that fits in a message, saying how many it left out.
 */
import type { CallDirection } from '../call-stats.js';

/** Which side holds a stalled stream up: `peer` (it grants no credit for what we queued) or `local` (our reader takes nothing). */
export type StallSide = 'peer' | 'local';

/** One stream, as `gridwire inspect` shows it. */
export interface InspectStream {
  id: number;
  /** `service/method`; `?` while `authorize` has not answered (the call is not running yet). */
  method: string;
  /** `made` (this side called) or `served` (the peer called this side). */
  direction: CallDirection;
  /** `unary`, `serverStream`, `clientStream`, `bidi`, `upload`, `download`. */
  kind?: string;
  /** The stream's state (session/stream.ts): `open`, `half-closed-local`... */
  state: string;
  /** Bytes the peer still lets us send on it (its credit), and messages. */
  sendCredit: number;
  sendMessageCredit: number;
  /** Bytes and messages the peer may still send us on it (our window). */
  receiveWindow: number;
  receiveMessageWindow: number;
  /** Bytes of ours queued, waiting for credit or their turn. */
  queuedBytes: number;
  /** Items received and not yet taken by this side's reader. */
  unconsumed: number;
  /** How long our bytes have waited for the peer's credit so far, in ms (0: not blocked). */
  blockedMs: number;
  /** All the time this stream's sends waited for credit, in ms (the stall going on included). */
  blockedTotalMs: number;
  /** ms since the stream opened (known for streams opened while inspect was on). */
  ageMs?: number;
  /** Set when the stall watch finds it blocked past the threshold. */
  stalled?: { side: StallSide; ms: number };
}

export interface InspectConnection {
  peer: {
    nodeName: string;
    label: string;
    address: string;
    transport: string;
    /** The peer's verified certificate, over TLS. */
    identity?: { subject: string; fingerprint256: string };
  };
  role: string;
  ageMs: number;
  rttMs?: number;
  bytesIn: number;
  bytesOut: number;
  /** Bytes the peer still lets us send on the connection as a whole (its connection window), over every stream. */
  sendCredit: number;
  /** `open`, `draining` (GOAWAY sent or received), `closing`... */
  phase: string;
  /** The reason in the peer's GOAWAY, once it sent one. */
  peerGoaway?: string;
  streamsOpen: number;
  streams: InspectStream[];
  /** Streams open but not listed (at most 2 000 streams are, over all connections). */
  streamsNotListed: number;
}

/** One finding of the stall watch. */
export interface InspectStall {
  /** The connection, as `node-name (address)`. */
  connection: string;
  streamId: number;
  method: string;
  direction: CallDirection;
  /** How long it has been blocked, in ms. */
  blockedMs: number;
  /** `peer`: the peer grants no credit (its reader does not take what it asked for); `local`: our reader takes nothing. */
  slowSide: StallSide;
}

export interface InspectSnapshot {
  /** This side's node name ('' when it has none). */
  node: string;
  pid: number;
  /** When the snapshot was taken (ISO 8601). */
  takenAt: string;
  /** A stream blocked on credit this long is stalled. */
  stallThresholdMs: number;
  /** Stalled streams, longest first. */
  stalled: InspectStall[];
  /** Calls in flight by method, both directions. */
  inFlight: Record<string, { made: number; served: number }>;
  connections: InspectConnection[];
  /** Connections not listed (at most 500 are). */
  connectionsNotListed: number;
}
