// The interface every benchmarked system implements, so worker.ts can drive raw TCP, ws, grpc-js and gridwire the
// same way. A system knows how to echo 32 bytes; it knows nothing of IPC, timing windows or statistics.

/** Size of the echoed payload, in bytes. */
export const PAYLOAD_BYTES = 32;

/** Called once per completed call with the start time that was passed to `call`. */
export type ReplyFn = (err: Error | null, t0: number) => void;

export interface BenchServer {
  /** Address the client dials, e.g. '127.0.0.1:41234' or 'tcp://127.0.0.1:41234'. */
  target: string;
  close(): Promise<void>;
}

export interface BenchClient {
  /** Issue one echo call; the system must eventually call its ReplyFn with this t0 (success or error). */
  call(t0: number): void;
  close(): Promise<void>;
}

export interface BenchSystem {
  startServer(): Promise<BenchServer>;
  /** Open ONE connection to `target`; all calls of this client share it. */
  connectClient(target: string, onReply: ReplyFn): Promise<BenchClient>;
}
