/**
 * Fuzz target `session` (reliability.md T-F2 live-socket fuzz, T-F6 slicing): a hostile peer's bytes (session-grammar.ts)
 * into an RpcSession serving the echo service over the in-memory pair, as acceptor or dialer, while the session makes
 * 0-2 echo calls of its own to the peer. Each input runs twice: delivered whole, and split at random byte boundaries
 * (both within one turn of the event loop, so only the cut points differ). Properties of each run:
 * - no uncaught exception and no unhandled rejection;
 * - the session fails only with a typed error: a ProtocolError with a documented code other than GW_ERR_INTERNAL (our
 *   bug), after writing the GOAWAY with its code and message; or a SessionError (the peer's GOAWAY or EOF);
 * - a session still open after the bytes serves: it answers a PING (or closes with a GOAWAY code for it);
 * - the session's own calls settle with a value or an RpcError;
 * - after the peer's EOF the session closes within 2 s; then no stream and no timer of the run is left, and whatever
 *   the session wrote decodes as frames.
 * And the two runs end the same: the same frames written and the same state when the bytes had been read, the same
 * error at the end.
 */
import assert from 'node:assert/strict';

import { createMemoryPair, createSession, MemoryBudget, RpcError, type RpcSession, type RpcSessionOptions } from '../../src/index.js';
import { SessionError } from '../../src/session/errors.js';
import { FRAME_HEADER_BYTES, Flag, FrameType } from '../../src/wire/constants.js';
import { FrameDecoder } from '../../src/wire/decoder.js';
import { ProtocolError, ProtocolErrorCode } from '../../src/wire/errors.js';
import type { Transport } from '../../src/transport/transport.js';
import { readU32 } from '../../src/wire/bytes.js';
import { decodeGoaway, encodePing } from '../../src/wire/payloads.js';
import { Echo, echoService } from '../fixtures/echo-service.js';
import { RawPeer, within, type RawFrame } from '../helpers.js';
import { describeThrown, hex, randomSlices, type FuzzTarget } from './harness.js';
import { decodeSessionInput, encodeSessionInput, sessionInputArb, type SessionInput } from './session-grammar.js';

/** How long the session may take to close after the peer's EOF, and to answer the probe PING. */
const CLOSE_MS = 2_000;
const PROBE_MS = 1_000;
const PROBE_OPAQUE = 0x5eed_f00dn;
const PROTOCOL_CODES = new Set<string>(Object.values(ProtocolErrorCode));

// ---------------------------------------------------------------- what a run leaves behind

/** Every setTimeout and setInterval made while active that has neither fired (a timeout) nor been cleared. */
function trackTimers(): { live(): string[]; stop(): void } {
  const live = new Map<unknown, string>();
  const real = { setTimeout, setInterval, clearTimeout, clearInterval };
  const where = (): string => new Error().stack?.split('\n')[3]?.trim() ?? '?';
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real.setTimeout((...a: unknown[]) => {
      live.delete(timer);
      fn(...a);
    }, ms, ...args);
    live.set(timer, `setTimeout ${ms ?? 0} ms ${where()}`);
    return timer;
  }) as typeof setTimeout;
  globalThis.setInterval = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real.setInterval(fn, ms, ...args);
    live.set(timer, `setInterval ${ms ?? 0} ms ${where()}`);
    return timer;
  }) as typeof setInterval;
  const clear = (timer: unknown): void => {
    live.delete(timer);
    real.clearTimeout(timer as NodeJS.Timeout);
  };
  globalThis.clearTimeout = clear as typeof clearTimeout;
  globalThis.clearInterval = clear as typeof clearInterval;
  return {
    live: () => [...live.values()],
    stop() {
      Object.assign(globalThis, real);
    },
  };
}

/** Uncaught exceptions and unhandled rejections while a run is on. */
function watchProcess(): { errors: string[]; stop(): void } {
  const errors: string[] = [];
  const onException = (error: unknown): void => void errors.push(`uncaught exception: ${describeThrown(error)}`);
  const onRejection = (reason: unknown): void => void errors.push(`unhandled rejection: ${describeThrown(reason)}`);
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  return {
    errors,
    stop() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
    },
  };
}

/**
 * Every frame the session puts on the wire: handed to `transport.write` before the session ended its side. (A session
 * that fails mid-read still dispatches the rest of that read's frames, and queues replies the ended transport drops.)
 */
function wireFrames(transport: Transport): RawFrame[] {
  const frames: RawFrame[] = [];
  const decoder = new FrameDecoder((type, flags, streamId, payload) => frames.push({ type, flags, streamId, payload: payload.slice() }), {
    maxFrameBytes: 16 * 1024 * 1024,
  });
  let ended = false;
  const write = transport.write.bind(transport);
  const end = transport.end.bind(transport);
  transport.write = (chunks) => {
    if (!ended) for (const chunk of chunks) decoder.push(chunk);
    return write(chunks);
  };
  transport.end = () => {
    ended = true;
    end();
  };
  return frames;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Budgets so small that the peer's calls run into them: sends and fragments refused (RESOURCE_EXHAUSTED), a reset
 * budget of 2, and handlers made async by an interceptor (a refusal then surfaces from a promise, where a throw would
 * be an unhandled rejection: the review's crash).
 */
function tightOptions(): RpcSessionOptions {
  return {
    services: [echoService()],
    maxQueuedSendBytes: 64,
    maxReassemblyBytes: 256,
    memoryBudget: new MemoryBudget(512),
    maxResetsPer30s: 2,
    maxBlockedWriteFrames: 4,
    serverInterceptors: [(next) => async (call) => {
      await Promise.resolve();
      return next(call);
    }],
  };
}

/** True when `bytes` is whole frames (whatever they hold): the session's decoder would stand between frames. */
function endsAtFrameBoundary(bytes: Uint8Array): boolean {
  let at = 0;
  while (at + FRAME_HEADER_BYTES <= bytes.length) at += FRAME_HEADER_BYTES + readU32(bytes, at + 6);
  return at === bytes.length;
}

// ---------------------------------------------------------------- one run

/** What a run must end with the same, however the bytes were cut. */
interface Outcome {
  /** When the bytes had been read: frames the session had written, its error, whether it took calls, its streams. */
  afterBytes: { written: string[]; error: string | undefined; acceptsCalls: boolean; streams: number };
  /** The error the session closed with (after the probe and the peer's EOF). */
  finalError: string | undefined;
}

const show = (f: RawFrame): string => `${f.type}/${f.flags}/${f.streamId}/${hex(f.payload, 32)}`;
const errorText = (error: Error | undefined): string | undefined => (error === undefined ? undefined : `${error.constructor.name}: ${error.message}`);

async function run(input: SessionInput, chunks: readonly Uint8Array[], how: string): Promise<Outcome> {
  const timers = trackTimers();
  const watch = watchProcess();
  let session: RpcSession | undefined;
  try {
    const [rawEnd, sessionEnd] = createMemoryPair();
    const written = wireFrames(sessionEnd);
    session = createSession(sessionEnd, input.role, input.tight ? tightOptions() : { services: [echoService()] });
    let closed = false;
    void session.closed.then(() => (closed = true));
    const raw = new RawPeer(rawEnd);
    const client = session.client(Echo);
    const calls = Array.from({ length: input.calls }, (_, i) =>
      client.echo({ call: i }).then(
        () => undefined,
        (error: unknown) => (error instanceof RpcError ? undefined : `call ${i} failed with ${describeThrown(error)}, not an RpcError`),
      ),
    );

    // the bytes, in one write (so in one turn of the loop) however they are cut; then the turn's microtasks
    rawEnd.write(chunks);
    await turn();
    const afterBytes = { written: written.map(show), error: errorText(session.error), acceptsCalls: session.acceptsCalls, streams: session.streamCount };

    // a session still open serves: it answers a PING (or, over its ping budget, closes with a GOAWAY code; or it was
    // closing already, after the peer's GOAWAY)
    if (session.error === undefined && endsAtFrameBoundary(input.bytes)) {
      const from = raw.frames.length;
      raw.send(FrameType.PING, 0, 0, encodePing(PROBE_OPAQUE));
      const s = session;
      const answered = (): boolean =>
        closed || s.error !== undefined || raw.frames.slice(from).some((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
      await untilTrue(answered, PROBE_MS, `${how}: the open session to answer a PING`);
    }

    rawEnd.end();
    const closedWith = await within(session.closed, CLOSE_MS, `${how}: the session to close after the peer's EOF`);
    const callFailures = (await within(Promise.all(calls), CLOSE_MS, `${how}: the session's own calls to settle`)).filter((x) => x !== undefined);
    await turn();

    assert.deepEqual(watch.errors, [], `${how}: the process saw errors`);
    assert.deepEqual(callFailures, [], `${how}: the session's own calls`);
    checkTypedClose(session, closedWith, written, how);
    assert.equal(raw.decodeError, undefined, `${how}: what the session wrote does not decode: ${String(raw.decodeError)}`);
    assert.equal(session.streamCount, 0, `${how}: streams left after close`);
    assert.deepEqual(timers.live(), [], `${how}: timers left after close`);
    return { afterBytes, finalError: errorText(closedWith) };
  } finally {
    session?.destroy();
    timers.stop();
    watch.stop();
  }
}

/** Waits, turn by turn of the event loop, until `predicate()` holds; fails after `ms`. */
async function untilTrue(predicate: () => boolean, ms: number, what: string): Promise<void> {
  const endsAt = performance.now() + ms;
  while (!predicate()) {
    if (performance.now() > endsAt) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await turn();
  }
}

/**
 * The session closed cleanly, or with a typed error, and a ProtocolError was told to the peer in a GOAWAY, unless the
 * session had ended its side already: it drains and ends after the peer's GOAWAY, and then has nobody to tell.
 */
function checkTypedClose(session: RpcSession, error: Error | undefined, written: readonly RawFrame[], how: string): void {
  if (error === undefined || error instanceof SessionError) return;
  if (!(error instanceof ProtocolError)) assert.fail(`${how}: the session closed with ${describeThrown(error)}, not a typed error`);
  assert.ok(PROTOCOL_CODES.has(error.code), `${how}: undocumented code ${error.code}`);
  assert.notEqual(error.code, ProtocolErrorCode.INTERNAL, `${how}: the session failed on its own bug: ${error.message}`);
  const goaways = written.filter((f) => f.type === FrameType.GOAWAY).map((f) => decodeGoaway(f.payload));
  if (goaways.length === 0 && session.goawayReason !== undefined) return;
  assert.ok(
    goaways.some((g) => g.code === error.connectionCode && g.message === error.message.slice(0, g.message.length)),
    `${how}: no GOAWAY ${error.connectionCode} "${error.message}" written (GOAWAYs: ${JSON.stringify(goaways)})`,
  );
}

async function check(corpus: Uint8Array): Promise<void> {
  const input = decodeSessionInput(corpus);
  const whole = await run(input, [input.bytes], 'delivered whole');
  const sliced = await run(input, randomSlices(input.bytes), 'split at random boundaries');
  assert.deepEqual(sliced, whole, 'the same bytes split at other boundaries end differently');
}

export const sessionTarget: FuzzTarget = {
  name: 'session',
  inputs: sessionInputArb.map(encodeSessionInput),
  check,
  describe: (corpus) => {
    const input = decodeSessionInput(corpus);
    return `a ${input.role} session making ${input.calls} call(s), fed ${input.bytes.length} bytes: ${hex(input.bytes)}`;
  },
};
