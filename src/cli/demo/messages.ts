/**
 * What the demo's orchestrator and its node processes say to each other over the child-process IPC channel (Node's
 * JSON serialization), one tagged object per message. The node's configuration travels as its first argument. Knows
 * nothing of how either side does its part.
 *
 *   orchestrator                              node
 *   spawn(node.js '<NodeConfig json>')  ->    starts its Mesh, listens
 *                                       <-    listening {url}
 *   peers {name: url}                   ->    adds them; links/peer events follow
 *   traffic {intervalMs}                ->    unary calls to every peer; stats every tick
 *   quiet                               ->    traffic stops; a last tick, then ack
 *   replicate {to, size, seed} (A only) ->    transfers; progress every tick, then transfer-done / transfer-failed
 *                                       <-    held {to} (--kill: A stopped feeding B's transfer at 40 %)
 *   release {to}                        ->    A feeds it again (B was killed meanwhile)
 *   window {node} / window {node: null} ->    calls to or from `node` failing now are expected (--kill); ack
 *   probe {peer, timeoutMs}             ->    one fail-fast call; probed {status, ms}
 *   verify {name} (B, C)                ->    sha256 of the file received; digest
 *   stop                                ->    final stats, then the node stops its mesh and exits
 */

export interface NodeConfig {
  name: string;
  /** tcp:// or tls:// address to listen on (port 0 the first time; a restarted node gets its old address back). */
  listen: string;
  /** Mutual TLS from these PEM files, or a plain TCP mesh. */
  tls?: { key: string; cert: string; ca: string };
  /** Where a receiving node's transfer store writes. */
  storeDir?: string;
  /** The other nodes, when known at start (a restarted node); else they come in a `peers` message. */
  peers?: Record<string, string>;
  /** Ticks: stats and progress are sent this often. */
  tickMs: number;
  /** Test-only (GRIDWIRE_DEMO_CORRUPT): flip one byte of the received file before its digest is taken. */
  corrupt?: boolean;
}

/** Calls one node made to one peer since its last report. */
export interface CallDelta {
  /** Calls by final status name (`OK`, `UNAVAILABLE`, ...), outside any expected-failure window. */
  byStatus: Record<string, number>;
  /** Failed calls inside the window of a killed node (--kill), by status name. */
  expected: Record<string, number>;
  /** Latencies of the OK calls, ms. */
  latenciesMs: number[];
}

/** One transfer as its sender sees it. */
export interface TransferProgress {
  to: string;
  name: string;
  /** Bytes the receiver holds verified (the transfer's position). */
  doneBytes: number;
  totalBytes: number;
  /** Bytes sent again after a cut (known at the end). */
  resentBytes: number;
  /** Attempts so far (1 + resumes). */
  attempts: number;
  /** The offset the last resume started from (0 before any). */
  resumedFrom: number;
  startedAt: number;
  finishedAt?: number;
}

/**
 * --kill: the sender stops reading its source for `to` at `offset` (and says `held`) until `release`, so the kill lands
 * mid-transfer however fast the machine is; the hold lasts the orchestrator's round trip to kill the receiver.
 */
export interface HoldAt {
  to: string;
  offset: number;
}

export type LinkStates = Record<string, { control: boolean; data: boolean }>;

export type ToNode =
  | { t: 'peers'; peers: Record<string, string> }
  | { t: 'traffic'; intervalMs: number }
  | { t: 'quiet' }
  | { t: 'replicate'; to: string[]; size: number; seed: string; name: string; holdAt?: HoldAt }
  | { t: 'release'; to: string }
  | { t: 'window'; node: string | null }
  | { t: 'probe'; peer: string; timeoutMs: number }
  | { t: 'verify'; name: string }
  | { t: 'stop' };

export type FromNode =
  | { t: 'listening'; url: string; pid: number }
  /** `cpuMs`: the node's CPU time so far (user + system), a measure that holds on a busy machine; `rssBytes` now. */
  | { t: 'tick'; links: LinkStates; calls: Record<string, CallDelta>; transfers: TransferProgress[]; cpuMs: number; rssBytes: number }
  | { t: 'peer'; peer: string; state: string; lane: string; error?: string; delayMs?: number }
  | { t: 'ack' }
  | { t: 'held'; to: string; offset: number; verified: number }
  | { t: 'probed'; peer: string; status: string; ms: number; message: string }
  /** `sourceSha256`: the sender's sha256 of all it sent, which the receiver matched before renaming its file into place. */
  | { t: 'transfer-done'; transfer: TransferProgress; sourceSha256: string }
  | { t: 'transfer-failed'; transfer: TransferProgress; error: string }
  | { t: 'digest'; name: string; sha256: string; bytes: number; ms: number }
  | { t: 'failed'; error: string }
  | { t: 'stopped' };
