/**
 * How bulk transfers fail, over the in-memory pair and TCP, in both directions: a sender's source that throws, a
 * handler that gives up, a source that yields something other than bytes, a request the input schema refuses, a
 * cancel from the caller (AbortSignal or `break`), and a deadline. In every case the receiver gets an RpcError, never a clean end; the other side stops (a
 * handler's ctx.signal aborts, a producer's `finally` runs, a file stream is destroyed); and the connection is left
 * as it was: no stream left in either table, the one concurrency slot free, and credit back (a transfer larger than
 * the connection window succeeds afterwards).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, type TestContext } from 'node:test';

import type { StandardSchemaV1 } from '@standard-schema/spec';

import {
  defineService,
  RpcError,
  serve,
  Status,
  statusName,
  upload,
  type CallContext,
  type RpcSession,
  type SessionOptions,
} from '../../src/index.js';
import {
  Bulk,
  CHUNK_BYTES,
  KiB,
  MiB,
  patternBytes,
  patternChunk,
  patternChunks,
  patternSha256,
  Tally,
  type PutRequest,
  type PutResult,
} from '../fixtures/bulk.js';
import { deferred, rejectsWithStatus, testConnTypes, until, within, type ConnTestOptions } from '../helpers.js';

const kinds: ConnTestOptions = { kinds: ['memory', 'tcp'], timeout: 10_000 };

/** Small enough that leaked credit would stall the transfer that follows. */
const CONNECTION_WINDOW = 256 * KiB;
/** One slot: a slot that is not given back makes the next call fail with UNAVAILABLE (refused). */
const TIGHT: SessionOptions = { connectionWindow: CONNECTION_WINDOW, maxConcurrentStreams: 1 };

function assertRpcError(error: unknown, code: Status, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, code, `${what}: expected ${statusName(code)}, got ${statusName(error.code)} (${error.message})`);
}

/** Reads a byte stream to its end; returns what came and the error it threw instead of ending (if it did). */
async function drain(stream: AsyncIterable<Uint8Array>, onChunk?: (tally: Tally) => void | Promise<void>): Promise<{ tally: Tally; error: unknown; ended: boolean }> {
  const tally = new Tally();
  try {
    for await (const chunk of stream) {
      tally.add(chunk);
      await onChunk?.(tally);
    }
    return { tally, error: undefined, ended: true };
  } catch (error) {
    return { tally, error, ended: false };
  }
}

/** A producer that never ends on its own; `stopped` once something called its return() (its `finally` ran). */
class Endless {
  yielded = 0;
  stopped = false;
  readonly stoppedSignal = deferred();

  constructor(private readonly chunkBytes = CHUNK_BYTES) {}

  async *chunks(): AsyncGenerator<Uint8Array> {
    let i = 0;
    try {
      while (true) {
        const chunk = patternChunk(i++, this.chunkBytes);
        this.yielded += chunk.length;
        yield chunk;
      }
    } finally {
      this.stopped = true;
      this.stoppedSignal.resolve();
    }
  }
}

/** What an upload handler saw. */
class UploadLog {
  readonly started = deferred();
  readonly finished = deferred();
  readonly tally = new Tally();
  bodyError: unknown;
  cleanEnd = false;
  ctx: CallContext | undefined;

  /** Reads the whole body, recording how it ended; rethrows the body's error. */
  async read(body: AsyncIterable<Uint8Array>, ctx: CallContext, onChunk?: (log: UploadLog) => void | Promise<void>): Promise<void> {
    this.ctx = ctx;
    this.started.resolve();
    try {
      for await (const chunk of body) {
        this.tally.add(chunk);
        await onChunk?.(this);
      }
      this.cleanEnd = true;
    } catch (error) {
      this.bodyError = error;
      throw error;
    } finally {
      this.finished.resolve();
    }
  }
}

/** Waits until neither side has a stream left. */
async function quiet(caller: RpcSession, callee: RpcSession): Promise<void> {
  await until(() => caller.core.streamCount === 0 && callee.core.streamCount === 0, 2000, 'no stream left on either side');
}

/**
 * After an upload that failed with `status` mid-transfer: the handler stopped reading, its body and signal failed with
 * that status (never a clean end), the caller's source ran its finally, no stream is left, and the connection is whole.
 */
async function assertUploadStopped(log: UploadLog, source: Endless, status: Status, caller: RpcSession, callee: RpcSession): Promise<void> {
  await within(log.finished.promise, 2000, 'the handler stopped reading');
  assert.equal(log.cleanEnd, false, 'never a clean end');
  assertRpcError(log.bodyError, status, "the handler's body");
  assertRpcError(log.ctx?.signal.reason, status, "the handler's signal");
  await within(source.stoppedSignal.promise, 2000, "the source's finally");
  await quiet(caller, callee);
  await assertConnectionWhole(caller);
}

/** A transfer each way of 16 connection windows: completes only if the connection's credit all came back. */
async function assertConnectionWhole(caller: RpcSession): Promise<void> {
  const size = 16 * CONNECTION_WINDOW + 1;
  const files = caller.client(Bulk);
  const expected = patternSha256(size);
  const up = await within(files.put({ name: 'after' }, patternChunks(size)), 5000, 'an upload after the failure');
  assert.equal(up.bytes, size);
  assert.equal(up.sha256, expected);
  const down = await within(drain(files.get({ bytes: size, kind: 'pattern' })), 5000, 'a download after the failure');
  assert.equal(down.error, undefined);
  assert.equal(down.tally.bytes, size);
  assert.equal(down.tally.sha256, expected);
}

void describe('bulk: the sender fails', () => {
  testConnTypes(
    'upload: the source throws after N bytes: the handler body throws an RpcError with its message; the call rejects',
    async (env) => {
      const N = MiB + 3 * CHUNK_BYTES;
      const log = new UploadLog();
      const service = serve(Bulk, {
        async put(req, body, ctx) {
          await log.read(body, ctx);
          return { name: req.name, bytes: log.tally.bytes, chunks: log.tally.chunks, sha256: log.tally.sha256 };
        },
        get: () => new Uint8Array(0),
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield* patternChunks(N);
        throw new Error('disk on fire');
      }
      const error = await within(rejectsWithStatus(caller.client(Bulk).put({ name: 'x' }, failing()), Status.UNKNOWN), 5000, 'upload');
      assert.match(error.message, /disk on fire/);
      await within(log.finished.promise, 2000, 'handler done reading');
      assert.equal(log.cleanEnd, false, 'never a clean end');
      assertRpcError(log.bodyError, Status.UNKNOWN, "the handler's body");
      assert.match(log.bodyError.message, /disk on fire/);
      assert.ok(log.tally.bytes <= N, `the handler got ${log.tally.bytes} bytes of ${N}`);
    },
    kinds,
  );

  testConnTypes(
    "upload: a source that throws an RpcError: its status reaches both ends (DATA_LOSS)",
    async (env) => {
      const log = new UploadLog();
      const service = serve(Bulk, {
        async put(req, body, ctx) {
          await log.read(body, ctx);
          return { name: req.name, bytes: 0, chunks: 0, sha256: '' };
        },
        get: () => new Uint8Array(0),
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield* patternChunks(200 * KiB);
        throw new RpcError(Status.DATA_LOSS, 'bad sector 7');
      }
      const error = await within(rejectsWithStatus(caller.client(Bulk).put({ name: 'x' }, failing()), Status.DATA_LOSS), 5000, 'upload');
      assert.match(error.message, /bad sector 7/);
      await within(log.finished.promise, 2000, 'handler done reading');
      assertRpcError(log.bodyError, Status.DATA_LOSS, "the handler's body");
      assert.match(log.bodyError.message, /bad sector 7/);
    },
    kinds,
  );

  testConnTypes(
    "download: the handler's generator throws after N bytes: the caller's for-await throws its message after at most N bytes",
    async (env) => {
      const N = MiB + 3 * CHUNK_BYTES;
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        async *get() {
          yield* patternChunks(N);
          throw new Error('disk on fire');
        },
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const result = await within(drain(caller.client(Bulk).get({ bytes: 0 })), 5000, 'download');
      assert.equal(result.ended, false, 'never a clean end');
      assertRpcError(result.error, Status.UNKNOWN, 'the download');
      assert.match(result.error.message, /disk on fire/);
      assert.ok(result.tally.bytes <= N, `the caller got ${result.tally.bytes} bytes of ${N}`);
      assert.equal(result.tally.sha256, patternSha256(result.tally.bytes), 'what came is a prefix of what was sent');
    },
    kinds,
  );

  testConnTypes(
    'download piped with stream/promises pipeline into a Writable: a handler failing mid-body rejects the pipeline',
    async (env) => {
      const N = 2 * MiB;
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        async *get() {
          yield* patternChunks(N);
          throw new Error('disk on fire');
        },
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const tally = new Tally();
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          tally.add(chunk);
          callback();
        },
      });
      let finished = false;
      sink.on('finish', () => (finished = true));
      const error = await within(
        pipeline(caller.client(Bulk).get({ bytes: 0 }), sink).then(
          () => assert.fail('the pipeline resolved as if the body were complete'),
          (e: unknown) => e,
        ),
        5000,
        'pipeline',
      );
      assertRpcError(error, Status.UNKNOWN, 'the pipeline');
      assert.match(error.message, /disk on fire/);
      assert.equal(finished, false, "the Writable never got end() (no 'finish')");
      assert.ok(tally.bytes <= N);
    },
    kinds,
  );

  testConnTypes(
    "download: the handler throws before any byte (NOT_FOUND) or returns a file stream that fails (ENOENT): the reader throws",
    async (env) => {
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        get(req) {
          if (req.kind === 'missing') throw new RpcError(Status.NOT_FOUND, `no such file: ${req.path}`);
          return createReadStream(req.path!);
        },
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const files = caller.client(Bulk);
      const path = join(tmpdir(), `gw-bulk-missing-${randomBytes(6).toString('hex')}`);
      const notFound = await within(drain(files.get({ bytes: 0, kind: 'missing', path })), 2000, 'download');
      assertRpcError(notFound.error, Status.NOT_FOUND, 'a handler that throws');
      assert.equal(notFound.tally.chunks, 0);
      const enoent = await within(drain(files.get({ bytes: 0, kind: 'file', path })), 2000, 'download');
      assert.ok(enoent.error instanceof RpcError, `a read stream that fails: ${String(enoent.error)}`);
      assert.match(enoent.error.message, /ENOENT/);
      assert.equal(enoent.tally.chunks, 0);
    },
    kinds,
  );

  testConnTypes(
    'a body that yields strings (a Readable in object mode) fails with INTERNAL both ways, never sent as garbage',
    async (env) => {
      const log = new UploadLog();
      const service = serve(Bulk, {
        async put(req, body, ctx) {
          await log.read(body, ctx);
          return { name: req.name, bytes: 0, chunks: 0, sha256: '' };
        },
        get: () => Readable.from(['not', 'bytes']) as unknown as AsyncIterable<Uint8Array>,
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const files = caller.client(Bulk);
      const strings = Readable.from(['not', 'bytes']) as unknown as AsyncIterable<Uint8Array>;
      const up = await within(rejectsWithStatus(files.put({ name: 'x' }, strings), Status.INTERNAL), 2000, 'upload');
      assert.match(up.message, /string/);
      await within(log.finished.promise, 2000, 'handler done reading');
      assertRpcError(log.bodyError, Status.INTERNAL, "the handler's body");
      assert.equal(log.tally.chunks, 0);
      const down = await within(drain(files.get({ bytes: 0 })), 2000, 'download');
      assertRpcError(down.error, Status.INTERNAL, 'the download');
      assert.match(down.error.message, /string/);
      assert.equal(down.tally.chunks, 0);
    },
    kinds,
  );

  testConnTypes(
    'upload: the handler gives up mid-body (RESOURCE_EXHAUSTED): the call rejects with its status and the source is stopped',
    async (env) => {
      const service = serve(Bulk, {
        async put(req, body) {
          const tally = new Tally();
          for await (const chunk of body) {
            tally.add(chunk);
            if (req.name === 'quota' && tally.bytes >= 512 * KiB) throw new RpcError(Status.RESOURCE_EXHAUSTED, 'quota exceeded');
          }
          return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
        },
        get: (req) => patternChunks(req.bytes),
        echo: (s) => s,
      });
      const { caller, callee } = await env.open({ services: [service], caller: TIGHT, callee: TIGHT });
      const source = new Endless();
      const error = await within(rejectsWithStatus(caller.client(Bulk).put({ name: 'quota' }, source.chunks()), Status.RESOURCE_EXHAUSTED), 5000, 'upload');
      assert.match(error.message, /quota exceeded/);
      await within(source.stoppedSignal.promise, 2000, "the source's finally");
      await quiet(caller, callee);
      await assertConnectionWhole(caller);
    },
    kinds,
  );

  testConnTypes(
    'upload from fs.createReadStream, the handler gives up mid-body: the read stream is destroyed (the file is closed)',
    async (env, t) => {
      const path = await bigTempFile(t, 16 * MiB);
      const service = serve(Bulk, {
        async put(_req, body) {
          let bytes = 0;
          for await (const chunk of body) {
            bytes += chunk.length;
            if (bytes >= 512 * KiB) throw new RpcError(Status.RESOURCE_EXHAUSTED, 'quota exceeded');
          }
          throw new Error('unreachable: the file is larger than the quota');
        },
        get: () => [],
        echo: (s) => s,
      });
      const { caller, callee } = await env.open({ services: [service] });
      const file = createReadStream(path);
      await within(rejectsWithStatus(caller.client(Bulk).put({ name: 'x' }, file), Status.RESOURCE_EXHAUSTED), 5000, 'upload');
      await within(closedStream(file), 2000, 'the read stream closed');
      assert.equal(file.destroyed, true);
      await quiet(caller, callee);
    },
    kinds,
  );

  testConnTypes(
    'upload: a handler that breaks out of its body stalls the caller (no more credit) until it answers; the caller gets the answer',
    async (env) => {
      const BULK_WINDOW = 1 * MiB;
      let pulled = 0;
      const broke = deferred();
      const service = serve(Bulk, {
        async put(req, body) {
          let bytes = 0;
          for await (const chunk of body) {
            bytes += chunk.length;
            if (bytes >= 512 * KiB) break;
          }
          broke.resolve();
          await new Promise((resolve) => setTimeout(resolve, 300));
          return { name: req.name, bytes, chunks: 0, sha256: '' };
        },
        get: () => [],
        echo: (s) => s,
      });
      const { caller, callee } = await env.open({ services: [service], callee: { bulkWindow: BULK_WINDOW } });
      async function* endless(): AsyncGenerator<Buffer> {
        for (let i = 0; ; i++) {
          pulled += CHUNK_BYTES;
          yield patternChunk(i, CHUNK_BYTES);
        }
      }
      const result = await within(caller.client(Bulk).put({ name: 'early' }, endless()), 5000, 'upload answered early');
      assert.ok(result.bytes >= 512 * KiB, 'the handler read what it wanted');
      await broke.promise;
      // what the handler read, one bulk window the stalled caller may still send, the sender's high-water mark, slack
      const bound = 512 * KiB + BULK_WINDOW + 64 * KiB + 4 * CHUNK_BYTES;
      assert.ok(pulled <= bound, `the caller pulled at most ${bound} bytes from its source, not ${pulled}`);
      await quiet(caller, callee);
    },
    kinds,
  );

  testConnTypes(
    'upload: the handler answers before the body ends: the call resolves with its response and the source is stopped',
    async (env) => {
      const service = serve(Bulk, {
        async put(req, body) {
          const tally = new Tally();
          for await (const chunk of body) {
            tally.add(chunk);
            if (req.name === 'early') return { name: req.name, bytes: tally.bytes, chunks: 1, sha256: '' };
          }
          return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
        },
        get: (req) => patternChunks(req.bytes),
        echo: (s) => s,
      });
      const { caller, callee } = await env.open({ services: [service], caller: TIGHT, callee: TIGHT });
      const source = new Endless();
      const result = await within(caller.client(Bulk).put({ name: 'early' }, source.chunks()), 5000, 'upload');
      assert.equal(result.name, 'early');
      assert.equal(result.chunks, 1);
      await within(source.stoppedSignal.promise, 2000, "the source's finally");
      await quiet(caller, callee);
      await assertConnectionWhole(caller);
    },
    kinds,
  );
});

/** A Standard Schema validator, by hand: a non-empty `name`. */
const named: StandardSchemaV1<unknown, PutRequest> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: (value) =>
      typeof value === 'object' && value !== null && typeof (value as PutRequest).name === 'string' && (value as PutRequest).name !== ''
        ? { value: value as PutRequest }
        : { issues: [{ message: 'name must be a non-empty string' }] },
  },
};
const anything: StandardSchemaV1<unknown, PutResult> = {
  '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value: value as PutResult }) },
};
const Checked = defineService('test.bulk.checked', { put: upload({ input: named, output: anything }) });

void describe('bulk: the request is refused', () => {
  testConnTypes(
    "upload whose request fails the input schema: INVALID_ARGUMENT, the handler never runs, the caller's source is stopped",
    async (env) => {
      let ran = 0;
      const service = serve(Checked, {
        async put(req, body) {
          ran++;
          for await (const chunk of body) void chunk;
          return { name: req.name, bytes: 0, chunks: 0, sha256: '' };
        },
      });
      const { caller, callee } = await env.open({ services: [service] });
      const source = new Endless();
      const error = await within(rejectsWithStatus(caller.client(Checked).put({ name: '' }, source.chunks()), Status.INVALID_ARGUMENT), 5000, 'upload');
      assert.match(error.message, /non-empty/);
      await within(source.stoppedSignal.promise, 2000, "the source's finally");
      assert.equal(ran, 0, 'the handler never ran');
      await quiet(caller, callee);
      const ok = await within(caller.client(Checked).put({ name: 'ok' }, patternChunks(MiB)), 5000, 'a valid upload after');
      assert.equal(ok.name, 'ok');
      assert.equal(ran, 1);
    },
    kinds,
  );

  testConnTypes(
    'upload from fs.createReadStream of a missing file: the call rejects with ENOENT and the handler body throws it',
    async (env) => {
      const log = new UploadLog();
      const service = serve(Bulk, {
        async put(req, body, ctx) {
          await log.read(body, ctx);
          return { name: req.name, bytes: 0, chunks: 0, sha256: '' };
        },
        get: () => [],
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const missing = join(tmpdir(), `gw-bulk-missing-${randomBytes(6).toString('hex')}`);
      const error = await within(rejectsWithStatus(caller.client(Bulk).put({ name: 'x' }, createReadStream(missing)), Status.UNKNOWN), 5000, 'upload');
      assert.match(error.message, /ENOENT/);
      await within(log.finished.promise, 2000, 'the handler body ended');
      assert.equal(log.cleanEnd, false, 'never a clean end');
      assertRpcError(log.bodyError, Status.UNKNOWN, "the handler's body");
      assert.match(log.bodyError.message, /ENOENT/);
    },
    kinds,
  );
});

/** An upload handler that reads until told to stop, then waits for its signal and tries the body once more. */
function stallingUploads(log: UploadLog, stallAfter: number): ReturnType<typeof serve> {
  return serve(Bulk, {
    async put(req, body, ctx) {
      if (req.name === 'after') {
        const tally = new Tally();
        for await (const chunk of body) tally.add(chunk);
        return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
      }
      await log.read(body, ctx, async (l) => {
        if (l.tally.bytes >= stallAfter && !ctx.signal.aborted) {
          // a handler busy elsewhere (not reading) still learns of the end of the call through its signal
          await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        }
      });
      return { name: req.name, bytes: log.tally.bytes, chunks: log.tally.chunks, sha256: log.tally.sha256 };
    },
    get: (req) => patternChunks(req.bytes),
    echo: (s) => s,
  });
}

/** A download handler whose endless generator records its `finally`; 'pattern' requests send req.bytes and end. */
function endlessDownloads(source: Endless, onCtx?: (ctx: CallContext) => void): ReturnType<typeof serve> {
  return serve(Bulk, {
    async put(req, body) {
      const tally = new Tally();
      for await (const chunk of body) tally.add(chunk);
      return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
    },
    get(req, ctx) {
      if (req.kind === 'pattern') return patternChunks(req.bytes);
      onCtx?.(ctx);
      return source.chunks();
    },
    echo: (s) => s,
  });
}

void describe('bulk: cancel', () => {
  testConnTypes(
    "T-S2 upload: the caller aborts mid-transfer: CANCELLED; the handler's signal aborts and its body throws; slots and credit come back",
    async (env) => {
      const log = new UploadLog();
      const { caller, callee } = await env.open({ services: [stallingUploads(log, 512 * KiB)], caller: TIGHT, callee: TIGHT });
      const source = new Endless();
      const controller = new AbortController();
      const call = caller.client(Bulk).put({ name: 'x' }, source.chunks(), { signal: controller.signal });
      await until(() => log.tally.bytes >= 512 * KiB, 5000, 'the handler got 512 KiB');
      const start = performance.now();
      controller.abort();
      await rejectsWithStatus(call, Status.CANCELLED, 'the upload');
      assert.ok(performance.now() - start < 100, 'CANCELLED at once (within 100 ms, with data in flight)');
      await assertUploadStopped(log, source, Status.CANCELLED, caller, callee);
    },
    kinds,
  );

  testConnTypes(
    "T-S2 download: the caller aborts mid-transfer: CANCELLED; the handler's signal aborts and its generator's finally runs; slots and credit come back",
    async (env) => {
      const source = new Endless();
      let ctx: CallContext | undefined;
      const { caller, callee } = await env.open({ services: [endlessDownloads(source, (c) => (ctx = c))], caller: TIGHT, callee: TIGHT });
      const controller = new AbortController();
      const stream = caller.client(Bulk).get({ bytes: 0 }, { signal: controller.signal });
      const result = await within(
        drain(stream, (tally) => {
          if (tally.bytes >= 512 * KiB && !controller.signal.aborted) controller.abort();
        }),
        5000,
        'download',
      );
      assert.equal(result.ended, false, 'never a clean end');
      assertRpcError(result.error, Status.CANCELLED, 'the download');
      await within(source.stoppedSignal.promise, 2000, "the generator's finally");
      assertRpcError(ctx?.signal.reason, Status.CANCELLED, "the handler's signal");
      await quiet(caller, callee);
      await assertConnectionWhole(caller);
    },
    kinds,
  );

  testConnTypes(
    "T-S2 download: `break` out of the for-await stops the handler's generator (finally) and aborts its signal with CANCELLED",
    async (env) => {
      const source = new Endless();
      let ctx: CallContext | undefined;
      const { caller, callee } = await env.open({ services: [endlessDownloads(source, (c) => (ctx = c))], caller: TIGHT, callee: TIGHT });
      let bytes = 0;
      for await (const chunk of caller.client(Bulk).get({ bytes: 0 })) {
        bytes += chunk.length;
        if (bytes >= 512 * KiB) break;
      }
      await within(source.stoppedSignal.promise, 2000, "the generator's finally");
      assertRpcError(ctx?.signal.reason, Status.CANCELLED, "the handler's signal");
      await quiet(caller, callee);
      await assertConnectionWhole(caller);
    },
    kinds,
  );

  testConnTypes(
    'T-S2 download: cancelling a transfer from fs.createReadStream destroys the read stream (the file is closed)',
    async (env, t) => {
      const path = await bigTempFile(t, 16 * MiB);
      let file: ReadStream | undefined;
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        get: () => (file = createReadStream(path)),
        echo: (s) => s,
      });
      const { caller, callee } = await env.open({ services: [service], caller: TIGHT, callee: TIGHT });
      const controller = new AbortController();
      const result = await within(
        drain(caller.client(Bulk).get({ bytes: 0 }, { signal: controller.signal }), (tally) => {
          if (tally.bytes >= 512 * KiB && !controller.signal.aborted) controller.abort();
        }),
        5000,
        'download',
      );
      assertRpcError(result.error, Status.CANCELLED, 'the download');
      assert.ok(result.tally.bytes < 16 * MiB);
      await within(closedStream(file!), 2000, 'the read stream closed');
      assert.equal(file!.destroyed, true);
      await quiet(caller, callee);
    },
    kinds,
  );
});

function closedStream(file: ReadStream): Promise<void> {
  if (file.closed) return Promise.resolve();
  return new Promise((resolve) => file.once('close', () => resolve()));
}

async function bigTempFile(t: TestContext, size: number): Promise<string> {
  const path = join(tmpdir(), `gw-bulk-${process.pid}-${randomBytes(6).toString('hex')}.bin`);
  t.after(() => rm(path, { force: true }));
  await writeFile(path, patternBytes(size));
  return path;
}

void describe('bulk: deadlines', () => {
  const TIMEOUT_MS = 300;

  testConnTypes(
    "T-S3 upload with timeoutMs: DEADLINE_EXCEEDED during the transfer; the handler's signal aborts and its body throws",
    async (env) => {
      const log = new UploadLog();
      const { caller, callee } = await env.open({ services: [stallingUploads(log, Number.POSITIVE_INFINITY)], caller: TIGHT, callee: TIGHT });
      const source = new Endless();
      const start = performance.now();
      await within(
        rejectsWithStatus(caller.client(Bulk).put({ name: 'x' }, source.chunks(), { timeoutMs: TIMEOUT_MS }), Status.DEADLINE_EXCEEDED),
        5000,
        'upload',
      );
      const elapsed = performance.now() - start;
      assert.ok(elapsed >= TIMEOUT_MS - 1 && elapsed <= TIMEOUT_MS + 250, `DEADLINE_EXCEEDED after ${elapsed.toFixed(0)} ms`);
      assert.ok(log.tally.bytes > 0, 'the transfer was under way');
      await assertUploadStopped(log, source, Status.DEADLINE_EXCEEDED, caller, callee);
    },
    kinds,
  );

  testConnTypes(
    "T-S3 download with timeoutMs: the for-await throws DEADLINE_EXCEEDED during the transfer; the handler's signal aborts; its finally runs",
    async (env) => {
      const source = new Endless();
      let ctx: CallContext | undefined;
      const { caller, callee } = await env.open({ services: [endlessDownloads(source, (c) => (ctx = c))], caller: TIGHT, callee: TIGHT });
      const start = performance.now();
      const result = await within(drain(caller.client(Bulk).get({ bytes: 0 }, { timeoutMs: TIMEOUT_MS })), 5000, 'download');
      const elapsed = performance.now() - start;
      assert.equal(result.ended, false, 'never a clean end');
      assertRpcError(result.error, Status.DEADLINE_EXCEEDED, 'the download');
      assert.ok(elapsed >= TIMEOUT_MS - 1 && elapsed <= TIMEOUT_MS + 250, `DEADLINE_EXCEEDED after ${elapsed.toFixed(0)} ms`);
      assert.ok(result.tally.bytes > 0, 'the transfer was under way');
      await within(source.stoppedSignal.promise, 2000, "the generator's finally");
      assertRpcError(ctx?.signal.reason, Status.DEADLINE_EXCEEDED, "the handler's signal");
      await quiet(caller, callee);
      await assertConnectionWhole(caller);
    },
    kinds,
  );
});
