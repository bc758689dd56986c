/**
 * Message streams end to end (serverStream, clientStream, bidi), over every transport and in both directions (the
 * acceptor calling the dialer too): round trips, empty streams, messages larger than a stream window, request
 * metadata and trailers, per-message Standard Schema validation, errors from either side (and limits), cancellation
 * (signal, `break`, deadline) with the stream and its concurrency slot freed on both sides, a graceful close or a lost
 * connection under a stream, and 100 streams interleaving on one connection. Flow control and protocol enforcement
 * are in session/flow-control.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe } from 'node:test';

import type { StandardSchemaV1 } from '@standard-schema/spec';
import {
  bidi,
  clientStream,
  defineService,
  RpcError,
  serve,
  serverStream,
  Status,
  statusName,
  type Handlers,
  type Metadata,
  type RpcSession,
} from '../../src/index.js';
import { deferred, rejectsWithStatus, sleep, testConnTypes, until, within, type ConnTestOptions } from '../helpers.js';

// ---------------------------------------------------------------- data and reading helpers

const MiB = 1024 * 1024;
const RANDOM = randomBytes(MiB + 64);

/** `size` bytes that differ per `i` (random content, the index in the first 4 bytes): reordering or loss shows. */
function blob(i: number, size: number): Uint8Array {
  const offset = (i * 13) % 64;
  const bytes = Buffer.from(RANDOM.subarray(offset, offset + size)); // a copy
  if (size >= 4) bytes.writeUInt32BE(i >>> 0, 0);
  return bytes;
}

function assertBytes(actual: unknown, expected: Uint8Array, what: string): void {
  assert.ok(actual instanceof Uint8Array, `${what} is a Uint8Array, got ${Object.prototype.toString.call(actual)}`);
  assert.equal(actual.byteLength, expected.byteLength, `${what}: length`);
  assert.ok(Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected), `${what}: bytes differ`);
}

/** Reads a stream to its end, bounded in time. */
async function readAll<T>(stream: AsyncIterable<T>, ms: number, what: string): Promise<T[]> {
  const items: T[] = [];
  await within(
    (async () => {
      for await (const item of stream) items.push(item);
    })(),
    ms,
    what,
  );
  return items;
}

/** Reads a stream that must fail: returns what arrived before the error, and the error. */
async function readUntilError<T>(stream: AsyncIterable<T>, ms: number, what: string): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    await within(
      (async () => {
        for await (const item of stream) items.push(item);
      })(),
      ms,
      what,
    );
  } catch (error) {
    return { items, error };
  }
  assert.fail(`${what}: ended cleanly after ${items.length} items; expected an error`);
}

function assertStatus(error: unknown, code: Status, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, code, `${what}: expected ${statusName(code)}, got ${statusName(error.code)} (${error.message})`);
}

/** Both ends have forgotten every stream. */
async function streamsGone(a: RpcSession, b: RpcSession, what: string): Promise<void> {
  await until(() => a.core.streamCount === 0 && b.core.streamCount === 0, 2000, `${what}: stream tables empty on both sides`);
}

// ---------------------------------------------------------------- the service

interface Item {
  i: number;
  tag?: number;
  data?: Uint8Array;
}

const Streams = defineService('test.Streams', {
  /** Yields `n` items {i, tag} (with `size` bytes of data each when size is set). */
  tail: serverStream<{ n: number; size?: number; tag?: number }, Item>(),
  /** Returns a plain array (a sync iterable), not a generator. */
  list: serverStream<number, number>(),
  /** Yields 0, 1, 2... forever, as fast as flow control lets it. */
  endless: serverStream<null, number>(),
  /** Yields 0, 1, 2... forever, one every `everyMs`. */
  ticks: serverStream<number, number>(),
  sum: clientStream<number, number>(),
  /** How many blobs it read and the sha256 of their concatenation. */
  digest: clientStream<Uint8Array, { count: number; sha256: string }>(),
  chat: bidi<string, string>(),
  /** Says 'welcome' before reading anything, then echoes. */
  greet: bidi<string, string>(),
  echo: bidi<Item, Item>(),
});

type StreamHandlers = Handlers<(typeof Streams)['methods']>;

const defaults: StreamHandlers = {
  async *tail({ n, size, tag }) {
    for (let i = 0; i < n; i++) {
      const item: Item = { i };
      if (tag !== undefined) item.tag = tag;
      if (size !== undefined) item.data = blob(i, size);
      yield item;
    }
  },
  list: (n) => Array.from({ length: n }, (_, i) => i * 2),
  async *endless() {
    for (let i = 0; ; i++) yield i;
  },
  async *ticks(everyMs) {
    for (let i = 0; ; i++) {
      yield i;
      await sleep(everyMs);
    }
  },
  async sum(requests) {
    let total = 0;
    for await (const x of requests) total += x;
    return total;
  },
  async digest(requests) {
    const hash = createHash('sha256');
    let count = 0;
    for await (const bytes of requests) {
      hash.update(bytes);
      count++;
    }
    return { count, sha256: hash.digest('hex') };
  },
  async *chat(requests) {
    for await (const m of requests) yield m.toUpperCase();
  },
  async *greet(requests) {
    yield 'welcome';
    for await (const m of requests) yield m;
  },
  async *echo(requests) {
    for await (const m of requests) yield m;
  },
};

function streams(overrides: Partial<StreamHandlers> = {}): ReturnType<typeof serve> {
  return serve(Streams, { ...defaults, ...overrides });
}

/** What a handler under test saw: when it started, its signal's abort reason, whether it has returned. */
interface Probe {
  started: ReturnType<typeof deferred<void>>;
  aborted: ReturnType<typeof deferred<unknown>>;
  returned: ReturnType<typeof deferred<void>>;
  /** What the handler's request iterator threw, if anything. */
  requestError: unknown;
  seen: unknown[];
}

function probe(): Probe {
  return { started: deferred(), aborted: deferred<unknown>(), returned: deferred(), requestError: undefined, seen: [] };
}

/** Call at the start of a handler: records the start and the signal's abort reason. */
function enter(p: Probe, signal: AbortSignal): void {
  if (signal.aborted) p.aborted.resolve(signal.reason);
  else signal.addEventListener('abort', () => p.aborted.resolve(signal.reason), { once: true });
  p.started.resolve();
}

/** A `sum` handler that records into `p`: its start and abort reason, each request, what its iterator threw, its return. */
function recordingSum(p: Probe): StreamHandlers['sum'] {
  return async (requests, ctx) => {
    enter(p, ctx.signal);
    let total = 0;
    try {
      for await (const x of requests) {
        p.seen.push(x);
        total += x;
      }
    } catch (error) {
      p.requestError = error;
      throw error;
    } finally {
      p.returned.resolve();
    }
    return total;
  };
}

function assertReason(reason: unknown, code: Status, what: string): void {
  assertStatus(reason, code, `${what}: the handler's signal.reason`);
}

// ---------------------------------------------------------------- round trips

void describe('streams: round trips', () => {
  testConnTypes('T-S1 serverStream: 100 responses in order, an empty stream, a plain array; request metadata and the trailer', async (env) => {
    let seenMetadata: Metadata | undefined;
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *tail({ n }, ctx) {
            seenMetadata = ctx.metadata;
            ctx.trailer['x-count'] = String(n);
            for (let i = 0; i < n; i++) yield { i };
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    let trailer: Metadata | undefined;
    const items = await readAll(c.tail({ n: 100 }, { metadata: { 'x-request-id': 'r-7' }, onTrailer: (m) => (trailer = m) }), 5000, 'tail 100');
    assert.deepEqual(items, Array.from({ length: 100 }, (_, i) => ({ i })));
    assert.equal(seenMetadata?.['x-request-id'], 'r-7', 'request metadata reaches ctx.metadata');
    assert.equal(trailer?.['x-count'], '100', 'ctx.trailer reaches onTrailer');

    let emptyTrailer: Metadata | undefined;
    assert.deepEqual(await readAll(c.tail({ n: 0 }, { onTrailer: (m) => (emptyTrailer = m) }), 2000, 'tail 0'), [], 'zero responses');
    assert.equal(emptyTrailer?.['x-count'], '0', 'an empty stream still carries its trailer');

    let listTrailer: Metadata | undefined;
    assert.deepEqual(await readAll(c.list(5, { onTrailer: (m) => (listTrailer = m) }), 2000, 'list'), [0, 2, 4, 6, 8], 'a returned array is streamed');
    assert.deepEqual(Object.keys(listTrailer ?? { missing: '' }), [], 'without trailer entries onTrailer still fires, with an empty block');
    assert.deepEqual(await readAll(c.list(0), 2000, 'list 0'), []);

    // a finished stream stays finished
    const stream = c.tail({ n: 1 });
    assert.deepEqual(await readAll(stream, 2000, 'tail 1'), [{ i: 0 }]);
    assert.deepEqual(await stream.next(), { done: true, value: undefined });
    await streamsGone(caller, callee, 'after the calls');
  });

  testConnTypes('T-S1 clientStream: an array, an async generator, zero requests; request metadata and the trailer', async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async sum(requests, ctx) {
            p.seen.push(ctx.metadata['x-tenant']);
            let total = 0;
            let count = 0;
            for await (const x of requests) {
              total += x;
              count++;
            }
            ctx.trailer['x-count'] = String(count);
            return total;
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    let trailer: Metadata | undefined;
    assert.equal(await within(c.sum([1, 2, 3], { metadata: { 'x-tenant': 'blue' }, onTrailer: (m) => (trailer = m) }), 2000, 'sum array'), 6);
    assert.equal(trailer?.['x-count'], '3');
    assert.deepEqual(p.seen, ['blue'], 'request metadata reaches ctx.metadata');

    async function* numbers(n: number): AsyncGenerator<number> {
      for (let i = 1; i <= n; i++) {
        if (i % 10 === 0) await sleep(1); // a source that really waits now and then
        yield i;
      }
    }
    assert.equal(await within(c.sum(numbers(100), { onTrailer: (m) => (trailer = m) }), 5000, 'sum generator'), 5050);
    assert.equal(trailer?.['x-count'], '100');

    assert.equal(await within(c.sum([], { onTrailer: (m) => (trailer = m) }), 2000, 'sum of nothing'), 0, 'zero requests');
    assert.equal(trailer?.['x-count'], '0');
    assert.equal(await within(c.sum(numbers(0)), 2000, 'sum of an empty generator'), 0);
    await streamsGone(caller, callee, 'after the calls');
  });

  testConnTypes('T-S1 bidi: a reply arrives before the caller ends its side; requests after replies; an empty conversation; metadata and trailer', async (env) => {
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *chat(requests, ctx) {
            let turns = 0;
            const prefix = String(ctx.metadata['x-prefix'] ?? '');
            for await (const m of requests) {
              turns++;
              yield prefix + m.toUpperCase();
            }
            ctx.trailer['x-turns'] = String(turns);
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    let trailer: Metadata | undefined;
    const chat = c.chat({ metadata: { 'x-prefix': '> ' }, onTrailer: (m) => (trailer = m) });
    for (const word of ['alpha', 'beta', 'gamma']) {
      await within(chat.send(word), 2000, `send ${word}`);
      // the side is still open: the reply must come now, not at the end
      assert.deepEqual(await within(chat.next(), 2000, `reply to ${word}`), { done: false, value: `> ${word.toUpperCase()}` });
    }
    chat.end();
    assert.deepEqual(await within(chat.next(), 2000, 'end of the conversation'), { done: true, value: undefined });
    assert.equal(trailer?.['x-turns'], '3');
    await assert.rejects(chat.send('late'), 'send() after end() rejects');

    // several requests queued before anything is read
    const batch = c.chat();
    for (const word of ['a', 'b', 'c', 'd']) await within(batch.send(word), 2000, 'send');
    batch.end();
    assert.deepEqual(await readAll(batch, 2000, 'batch'), ['A', 'B', 'C', 'D']);

    // zero requests, zero responses
    const empty = c.chat({ onTrailer: (m) => (trailer = m) });
    empty.end();
    assert.deepEqual(await readAll(empty, 2000, 'empty conversation'), []);
    assert.equal(trailer?.['x-turns'], '0');

    // the handler may speak first, before the caller sends anything
    const greet = c.greet();
    assert.deepEqual(await within(greet.next(), 2000, 'greeting'), { done: false, value: 'welcome' });
    await greet.send('hi');
    greet.end();
    assert.deepEqual(await readAll(greet, 2000, 'after the greeting'), ['hi']);
    await streamsGone(caller, callee, 'after the calls');
  });

  testConnTypes(
    '1 MiB messages (4x the stream window) in every kind, intact',
    async (env) => {
      const { caller, callee } = await env.open({ services: [streams()] });
      const c = caller.client(Streams);
      const n = 3;

      const tail = await readAll(c.tail({ n, size: MiB }), 10_000, 'tail of 1 MiB items');
      assert.equal(tail.length, n);
      tail.forEach((item, i) => {
        assert.equal(item.i, i);
        assertBytes(item.data, blob(i, MiB), `serverStream response ${i}`);
      });

      const sent = Array.from({ length: n }, (_, i) => blob(i + 100, MiB));
      const hash = createHash('sha256');
      for (const b of sent) hash.update(b);
      assert.deepEqual(await within(c.digest(sent), 10_000, 'digest of 1 MiB requests'), { count: n, sha256: hash.digest('hex') });

      // bidi: write and read at once (a caller that writes everything first and never reads would rightly stall)
      const echo = c.echo();
      const reading = readAll(echo, 10_000, 'echo of 1 MiB items');
      for (let i = 0; i < n; i++) await within(echo.send({ i, data: blob(i + 200, MiB) }), 10_000, `send ${i}`);
      echo.end();
      const echoed = await reading;
      assert.equal(echoed.length, n);
      echoed.forEach((item, i) => {
        assert.equal(item.i, i);
        assertBytes(item.data, blob(i + 200, MiB), `bidi response ${i}`);
      });
      await streamsGone(caller, callee, 'after the calls');
    },
    { timeout: 20_000 },
  );
});

// ---------------------------------------------------------------- validation per message

interface Issue {
  message: string;
}

/** A Standard Schema v1 validator from a check function (sync). */
function schema<T>(check: (value: unknown) => { value: T } | { issues: Issue[] }): StandardSchemaV1<unknown, T> {
  return { '~standard': { version: 1, vendor: 'test', validate: (value) => check(value) } };
}

/** Accepts non-negative numbers and multiplies them by 10 (a transforming validator: handlers must see its output). */
const Tenfold = schema<number>((v) => (typeof v === 'number' && v >= 0 ? { value: v * 10 } : { issues: [{ message: 'must be a non-negative number' }] }));
const NonNegative = schema<number>((v) => (typeof v === 'number' && v >= 0 ? { value: v } : { issues: [{ message: 'must be a non-negative number' }] }));
/** Accepts non-empty strings, trimmed. */
const Word = schema<string>((v) => (typeof v === 'string' && v.trim() !== '' ? { value: v.trim() } : { issues: [{ message: 'must be a non-empty word' }] }));

const Checked = defineService('test.CheckedStreams', {
  total: clientStream({ input: Tenfold, output: NonNegative }),
  words: bidi({ input: Word, output: Word }),
  /** Yields 0..n-1 (each response validated on the caller). */
  count: serverStream({ input: NonNegative, output: NonNegative }),
});

void describe('streams: Standard Schema validation of every message', () => {
  testConnTypes('clientStream and bidi: each request is validated (and transformed); an invalid one mid-stream is INVALID_ARGUMENT', async (env) => {
    const total = probe();
    const words = probe();
    const { caller, callee } = await env.open({
      services: [
        serve(Checked, {
          async total(requests, ctx) {
            enter(total, ctx.signal);
            let sum = 0;
            try {
              for await (const x of requests) {
                total.seen.push(x);
                sum += x;
              }
            } catch (error) {
              total.requestError = error;
              throw error;
            }
            return sum;
          },
          async *words(requests, ctx) {
            enter(words, ctx.signal);
            try {
              for await (const w of requests) {
                words.seen.push(w);
                yield `${w}!`;
              }
            } catch (error) {
              words.requestError = error;
              throw error;
            }
          },
          async *count(n) {
            for (let i = 0; i < n; i++) yield i;
          },
        }),
      ],
    });
    const c = caller.client(Checked);
    assert.equal(await within(c.total([1, 2, 3]), 2000, 'valid total'), 60, 'the handler sees the validated (x10) values');
    assert.deepEqual(total.seen, [10, 20, 30]);

    total.seen = [];
    const error = await rejectsWithStatus(within(c.total([1, 2, -1, 4]), 2000, 'invalid total'), Status.INVALID_ARGUMENT, 'a -1 among the requests');
    assert.match(error.message, /must be a non-negative number/);
    assert.deepEqual(total.seen, [10, 20], 'the handler saw the valid requests before the invalid one, and nothing after');
    assertStatus(total.requestError, Status.INVALID_ARGUMENT, "the handler's request iterator");

    const chat = c.words();
    await chat.send('  hello ');
    assert.deepEqual(await within(chat.next(), 2000, 'reply 1'), { done: false, value: 'hello!' });
    await chat.send('world');
    assert.deepEqual(await within(chat.next(), 2000, 'reply 2'), { done: false, value: 'world!' });
    await chat.send('   '); // not a word
    await rejectsWithStatus(within(chat.next(), 2000, 'reply 3'), Status.INVALID_ARGUMENT, 'the bidi caller after an invalid request');
    assert.deepEqual(words.seen, ['hello', 'world']);
    assertStatus(words.requestError, Status.INVALID_ARGUMENT, "the bidi handler's request iterator");
    await rejectsWithStatus(chat.send('again'), Status.INVALID_ARGUMENT, 'a send after the call failed');

    // the single request of a serverStream is validated before the handler runs
    const { items, error: countError } = await readUntilError(c.count(-5), 2000, 'count(-5)');
    assert.deepEqual(items, []);
    assertStatus(countError, Status.INVALID_ARGUMENT, 'serverStream with an invalid request');
    assert.deepEqual(await readAll(c.count(3), 2000, 'count(3)'), [0, 1, 2], 'usable after');
    await streamsGone(caller, callee, 'after the calls');
  });

  testConnTypes("serverStream: each response is validated on the caller; an invalid one is INTERNAL after the valid ones, and the handler's signal aborts", async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      services: [
        serve(Checked, {
          total: async () => 0,
          words: () => [],
          async *count(n, ctx) {
            enter(p, ctx.signal);
            try {
              yield 0;
              yield 1;
              yield -1; // the output schema refuses it on the caller
              for (let i = 3; i < n; i++) yield i;
            } finally {
              p.returned.resolve();
            }
          },
        }),
      ],
    });
    const { items, error } = await readUntilError(caller.client(Checked).count(100_000), 3000, 'count with a bad response');
    assert.deepEqual(items, [0, 1]);
    assertStatus(error, Status.INTERNAL, 'an invalid response');
    assert.match(error.message, /must be a non-negative number/);
    assertReason(await within(p.aborted.promise, 2000, 'handler signal'), Status.CANCELLED, 'invalid response');
    await within(p.returned.promise, 2000, 'the handler returned');
    await streamsGone(caller, callee, 'after the failed call');
  });
});

// ---------------------------------------------------------------- errors

void describe('streams: errors', () => {
  testConnTypes('a serverStream handler that throws after yielding: the caller reads every response, then the status, message and metadata', async (env) => {
    const threw = deferred();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *tail({ n, tag }, ctx) {
            try {
              ctx.trailer['x-partial'] = String(n);
              for (let i = 0; i < n; i++) yield { i };
              if (tag === 1) throw new Error('disk full at /var/lib/x');
              throw new RpcError(Status.FAILED_PRECONDITION, 'ran out of items', { metadata: { 'x-why': 'empty' } });
            } finally {
              threw.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const stream = c.tail({ n: 3 });
    // let every response and the error arrive before reading: the error must still come after the responses
    await within(threw.promise, 2000, 'the handler threw');
    await streamsGone(caller, callee, 'the call is over on both sides');
    const { items, error } = await readUntilError(stream, 2000, 'tail that fails');
    assert.deepEqual(items, [{ i: 0 }, { i: 1 }, { i: 2 }], 'every response before the error');
    assertStatus(error, Status.FAILED_PRECONDITION, 'the error');
    assert.equal(error.rawMessage, 'ran out of items');
    assert.equal(error.metadata['x-why'], 'empty', 'the error metadata');
    assert.equal(error.metadata['x-partial'], '3', 'the trailer set before the throw');
    assert.deepEqual(await stream.next(), { done: true, value: undefined }, 'done after the error');

    // read while it runs, and a plain Error: UNKNOWN with only its message
    const plain = await readUntilError(c.tail({ n: 2, tag: 1 }), 2000, 'tail with a plain Error');
    assert.deepEqual(plain.items, [{ i: 0 }, { i: 1 }]);
    assertStatus(plain.error, Status.UNKNOWN, 'a plain Error');
    assert.equal(plain.error.rawMessage, 'disk full at /var/lib/x');
    assert.equal(await within(c.sum([1]), 2000, 'next call'), 1, 'the connection is still usable');
  });

  testConnTypes('a bidi handler that throws after replying, once the caller ended its side: the replies, then the status', async (env) => {
    const threw = deferred();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *chat(requests) {
            try {
              for await (const m of requests) yield m.toUpperCase();
              throw new RpcError(Status.ABORTED, 'conversation over', { metadata: { 'x-said': 'bye' } });
            } finally {
              threw.resolve();
            }
          },
        }),
      ],
    });
    const chat = caller.client(Streams).chat();
    for (const w of ['x', 'y', 'z']) await chat.send(w);
    chat.end();
    await within(threw.promise, 2000, 'the handler threw');
    await streamsGone(caller, callee, 'the call is over on both sides');
    const { items, error } = await readUntilError(chat, 2000, 'chat that fails');
    assert.deepEqual(items, ['X', 'Y', 'Z']);
    assertStatus(error, Status.ABORTED, 'the error');
    assert.equal(error.rawMessage, 'conversation over');
    assert.equal(error.metadata['x-said'], 'bye');
  });

  testConnTypes('a bidi handler that throws while the caller is still sending: the caller gets the status; its sends reject', async (env) => {
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *chat(requests) {
            for await (const m of requests) {
              if (m === 'stop') throw new RpcError(Status.OUT_OF_RANGE, 'told to stop');
              yield m;
            }
          },
        }),
      ],
    });
    const chat = caller.client(Streams).chat();
    await chat.send('one');
    assert.deepEqual(await within(chat.next(), 2000, 'reply'), { done: false, value: 'one' });
    await chat.send('stop');
    const error = await rejectsWithStatus(within(chat.next(), 2000, 'after stop'), Status.OUT_OF_RANGE, 'the caller');
    assert.equal(error.rawMessage, 'told to stop');
    await rejectsWithStatus(chat.send('more'), Status.OUT_OF_RANGE, 'a send after the failure');
    await streamsGone(caller, callee, 'after the failed call');
  });

  testConnTypes('a bidi handler that throws after yielding while the caller is still sending: the caller reads those replies, then the status', async (env) => {
    const threw = deferred();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *chat(requests) {
            let n = 0;
            try {
              for await (const m of requests) {
                yield m;
                if (++n === 3) throw new RpcError(Status.ABORTED, 'enough');
              }
            } finally {
              threw.resolve();
            }
          },
        }),
      ],
    });
    const chat = caller.client(Streams).chat();
    for (const w of ['x', 'y', 'z']) await chat.send(w);
    await within(threw.promise, 2000, 'the handler threw');
    const { items, error } = await readUntilError(chat, 2000, 'chat that fails mid-conversation');
    assert.deepEqual(items, ['x', 'y', 'z']);
    assertStatus(error, Status.ABORTED, 'the error after the replies');
    assert.equal(error.rawMessage, 'enough');
    await streamsGone(caller, callee, 'the caller never ended, yet the call is over on both sides');
  });

  testConnTypes('a clientStream handler that throws: the caller rejects with its status; one that answers early: the caller gets the answer', async (env) => {
    let pulled = 0;
    const { caller, callee } = await env.open({
      services: [
        streams({
          async sum(requests) {
            let total = 0;
            for await (const x of requests) {
              if (x < 0) throw new RpcError(Status.NOT_FOUND, `no item ${x}`);
              if (x === 1000) return -1; // answers before reading everything
              total += x;
            }
            return total;
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const error = await rejectsWithStatus(within(c.sum([1, 2, -3, 4]), 2000, 'sum'), Status.NOT_FOUND, 'a handler that throws');
    assert.equal(error.rawMessage, 'no item -3');

    async function* endless(): AsyncGenerator<number> {
      for (;;) {
        pulled++;
        yield 1000;
        await sleep(1);
      }
    }
    assert.equal(await within(c.sum(endless()), 2000, 'early answer'), -1, 'the early answer');
    await streamsGone(caller, callee, 'after the early answer');
    const after = pulled;
    await sleep(50);
    assert.ok(pulled <= after + 1, `the source is not pulled after the call is over (${pulled} vs ${after})`);
  });

  testConnTypes('limits and misuse fail one call, not the connection: a response over the caller\'s maxMessageBytes, a bidi request over the peer\'s, a handler returning no iterable', async (env) => {
    const limit = { maxMessageBytes: 64 * 1024 };
    const { caller, callee } = await env.open({
      caller: limit,
      callee: limit,
      services: [
        streams({
          async *tail() {
            yield { i: 0 };
            yield { i: 1, data: blob(1, 100 * 1024) };
            yield { i: 2 };
          },
          list: (() => 42) as unknown as StreamHandlers['list'],
        }),
      ],
    });
    const c = caller.client(Streams);
    const { items, error } = await readUntilError(c.tail({ n: 3 }), 2000, 'tail with a 100 KiB response');
    assert.deepEqual(items, [{ i: 0 }], 'the responses before the oversized one');
    assertStatus(error, Status.RESOURCE_EXHAUSTED, 'a response over the limit');

    const echo = c.echo();
    await echo.send({ i: 0 });
    const tooBig = await rejectsWithStatus(echo.send({ i: 1, data: blob(1, 100 * 1024) }), Status.RESOURCE_EXHAUSTED, 'a request over the limit');
    assert.equal(tooBig.retrySafe, true, 'nothing was sent');
    await echo.send({ i: 2 });
    echo.end();
    assert.deepEqual(await readAll(echo, 2000, 'the rest of the bidi call'), [{ i: 0 }, { i: 2 }], 'the call goes on without the oversized request');

    const notIterable = await readUntilError(c.list(3), 2000, 'list returning 42');
    assertStatus(notIterable.error, Status.INTERNAL, 'a handler returning a non-iterable');
    assert.match(notIterable.error.message, /iterable/);
    assert.equal(await within(c.sum([1, 2]), 2000, 'a following call'), 3);
    await streamsGone(caller, callee, 'after the calls');
  });

  testConnTypes("a caller whose request source throws: the handler's request iterator throws, the caller rejects with that message", async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      services: [
        streams({
          sum: recordingSum(p),
        }),
      ],
    });
    const c = caller.client(Streams);
    const source = async function* (): AsyncGenerator<number> {
      yield 1;
      yield 2;
      await sleep(20); // let the handler read the first two
      throw new Error('disk on fire');
    };
    const error = await within(c.sum(source()).then(
      () => assert.fail('the call resolved'),
      (e: unknown) => e,
    ), 2000, 'sum with a failing source');
    assertStatus(error, Status.UNKNOWN, 'the caller');
    assert.match(error.message, /disk on fire/);
    await within(p.returned.promise, 2000, 'the handler returned');
    assert.deepEqual(p.seen, [1, 2]);
    assert.ok(p.requestError instanceof RpcError, `the handler's iterator threw an RpcError, got ${String(p.requestError)}`);
    assert.match(p.requestError.message, /disk on fire/, "the handler's iterator throws the source's message");
    assertReason(await within(p.aborted.promise, 2000, 'handler signal'), Status.UNKNOWN, 'the source failed');

    // an RpcError thrown by the source keeps its status
    const source2 = async function* (): AsyncGenerator<number> {
      yield 5;
      throw new RpcError(Status.ABORTED, 'user changed their mind');
    };
    const error2 = await rejectsWithStatus(within(c.sum(source2()), 2000, 'sum with an RpcError source'), Status.ABORTED, 'the caller');
    assert.match(error2.message, /user changed their mind/);
    await streamsGone(caller, callee, 'after the failed calls');
  });
});

// ---------------------------------------------------------------- cancellation

void describe('streams: cancellation', () => {
  testConnTypes("T-S2 serverStream: aborting the caller's signal mid-stream; the handler's signal aborts with CANCELLED; the slot is freed", async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      callee: { maxConcurrentStreams: 1 },
      services: [
        streams({
          async *endless(_req, ctx) {
            enter(p, ctx.signal);
            try {
              for (let i = 0; ; i++) yield i;
            } finally {
              p.returned.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const controller = new AbortController();
    const stream = c.endless(null, { signal: controller.signal });
    for (let i = 0; i < 5; i++) assert.deepEqual(await within(stream.next(), 2000, `item ${i}`), { done: false, value: i });
    controller.abort();
    await rejectsWithStatus(within(stream.next(), 1000, 'next after abort'), Status.CANCELLED, 'the reader after abort');
    assertReason(await within(p.aborted.promise, 2000, 'handler signal'), Status.CANCELLED, 'abort');
    await within(p.returned.promise, 2000, 'the handler (a generator blocked on credit) returned');
    await streamsGone(caller, callee, 'after the abort');
    // the only slot (maxConcurrentStreams 1) is free again: a new call is not refused
    assert.deepEqual(await readAll(c.tail({ n: 2 }), 2000, 'next call'), [{ i: 0 }, { i: 1 }]);
  });

  testConnTypes("T-S2 bidi: aborting the caller's signal; the handler's request iterator and signal report CANCELLED; the slot is freed", async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      callee: { maxConcurrentStreams: 1 },
      services: [
        streams({
          async *chat(requests, ctx) {
            enter(p, ctx.signal);
            try {
              for await (const m of requests) yield m;
            } catch (error) {
              p.requestError = error;
              throw error;
            } finally {
              p.returned.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const controller = new AbortController();
    const chat = c.chat({ signal: controller.signal });
    await chat.send('hi');
    assert.deepEqual(await within(chat.next(), 2000, 'reply'), { done: false, value: 'hi' });
    const pending = chat.next(); // a reader waiting when the abort comes
    controller.abort();
    await rejectsWithStatus(within(pending, 1000, 'pending read'), Status.CANCELLED, 'the waiting reader');
    await rejectsWithStatus(chat.send('late'), Status.CANCELLED, 'a send after abort');
    assertReason(await within(p.aborted.promise, 2000, 'handler signal'), Status.CANCELLED, 'abort');
    await within(p.returned.promise, 2000, 'the handler returned');
    assertStatus(p.requestError, Status.CANCELLED, "the handler's request iterator");
    await streamsGone(caller, callee, 'after the abort');
    const next = c.chat();
    await next.send('again');
    next.end();
    assert.deepEqual(await readAll(next, 2000, 'next call'), ['again']);
  });

  testConnTypes('T-S2 break out of for await (serverStream and bidi) cancels the call: the handler sees CANCELLED, both sides forget the stream', async (env) => {
    const tail = probe();
    const chat = probe();
    const { caller, callee } = await env.open({
      callee: { maxConcurrentStreams: 1 },
      services: [
        streams({
          async *endless(_req, ctx) {
            enter(tail, ctx.signal);
            try {
              for (let i = 0; ; i++) yield i;
            } finally {
              tail.returned.resolve();
            }
          },
          async *chat(_requests, ctx) {
            enter(chat, ctx.signal);
            try {
              for (let i = 0; ; i++) {
                yield `tick ${i}`;
                await sleep(1);
              }
            } finally {
              chat.returned.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const got: number[] = [];
    await within(
      (async () => {
        for await (const i of c.endless(null)) {
          got.push(i);
          if (i === 9) break;
        }
      })(),
      2000,
      'reading 10 then break',
    );
    assert.deepEqual(got, Array.from({ length: 10 }, (_, i) => i));
    assertReason(await within(tail.aborted.promise, 2000, 'serverStream handler signal'), Status.CANCELLED, 'break');
    await within(tail.returned.promise, 2000, 'serverStream handler returned');
    await streamsGone(caller, callee, 'after break (serverStream)');

    const conversation = c.chat();
    let replies = 0;
    await within(
      (async () => {
        for await (const _ of conversation) if (++replies === 3) break;
      })(),
      2000,
      'reading 3 replies then break',
    );
    assertReason(await within(chat.aborted.promise, 2000, 'bidi handler signal'), Status.CANCELLED, 'break');
    await within(chat.returned.promise, 2000, 'bidi handler returned');
    await rejectsWithStatus(conversation.send('after break'), Status.CANCELLED, 'a send after break');
    await streamsGone(caller, callee, 'after break (bidi)');
    assert.deepEqual(await readAll(c.tail({ n: 1 }), 2000, 'next call'), [{ i: 0 }], 'the slot is free');
  });

  testConnTypes("T-S2 clientStream: aborting the caller's signal while its source still yields: the handler's request iterator throws CANCELLED; the source stops", async (env) => {
    const p = probe();
    const { caller, callee } = await env.open({
      services: [
        streams({
          sum: recordingSum(p),
        }),
      ],
    });
    let pulled = 0;
    let sourceClosed = false;
    async function* forever(): AsyncGenerator<number> {
      try {
        for (;;) {
          pulled++;
          yield 1;
          await sleep(2);
        }
      } finally {
        sourceClosed = true;
      }
    }
    const controller = new AbortController();
    const call = caller.client(Streams).sum(forever(), { signal: controller.signal });
    await until(() => p.seen.length >= 3, 2000, 'the handler read three requests');
    controller.abort();
    await rejectsWithStatus(within(call, 1000, 'sum'), Status.CANCELLED, 'the caller');
    assertReason(await within(p.aborted.promise, 2000, 'handler signal'), Status.CANCELLED, 'abort');
    await within(p.returned.promise, 2000, 'the handler returned');
    assertStatus(p.requestError, Status.CANCELLED, "the handler's request iterator");
    await until(() => sourceClosed, 1000, "the caller's source is closed (its finally ran)");
    const after = pulled;
    await sleep(30);
    assert.equal(pulled, after, 'the source is not pulled any more');
    await streamsGone(caller, callee, 'after the abort');
  });

  testConnTypes('T-S3 a deadline during a stream: DEADLINE_EXCEEDED on the caller (serverStream, clientStream, bidi); the handler signal aborts', async (env) => {
    const ticks = probe();
    const sum = probe();
    const chat = probe();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *ticks(everyMs, ctx) {
            enter(ticks, ctx.signal);
            try {
              for (let i = 0; ; i++) {
                yield i;
                await sleep(everyMs);
              }
            } finally {
              ticks.returned.resolve();
            }
          },
          sum: recordingSum(sum),
          async *chat(requests, ctx) {
            enter(chat, ctx.signal);
            try {
              for await (const m of requests) yield m;
            } catch (error) {
              chat.requestError = error;
              throw error;
            } finally {
              chat.returned.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    await readAll(c.tail({ n: 1 }), 2000, 'warm-up');

    const start = performance.now();
    const { items, error } = await readUntilError(c.ticks(10, { timeoutMs: 150 }), 2000, 'ticks with a 150 ms deadline');
    const elapsed = performance.now() - start;
    assertStatus(error, Status.DEADLINE_EXCEEDED, 'serverStream');
    assert.ok(elapsed >= 145 && elapsed <= 400, `DEADLINE_EXCEEDED ${elapsed.toFixed(0)} ms into a 150 ms budget`);
    assert.ok(items.length >= 3, `responses arrived before the deadline (${items.length})`);
    assert.deepEqual(items, Array.from({ length: items.length }, (_, i) => i));
    assertReason(await within(ticks.aborted.promise, 1000, 'serverStream handler signal'), Status.DEADLINE_EXCEEDED, 'serverStream deadline');
    await within(ticks.returned.promise, 1000, 'serverStream handler returned');

    async function* slowly(): AsyncGenerator<number> {
      for (;;) {
        yield 1;
        await sleep(20);
      }
    }
    await rejectsWithStatus(within(c.sum(slowly(), { timeoutMs: 100 }), 1000, 'sum'), Status.DEADLINE_EXCEEDED, 'clientStream');
    assertReason(await within(sum.aborted.promise, 1000, 'clientStream handler signal'), Status.DEADLINE_EXCEEDED, 'clientStream deadline');
    await within(sum.returned.promise, 1000, 'clientStream handler returned');
    assertStatus(sum.requestError, Status.DEADLINE_EXCEEDED, "the clientStream handler's request iterator");

    const conversation = c.chat({ timeoutMs: 100 });
    await conversation.send('before');
    assert.deepEqual(await within(conversation.next(), 1000, 'reply'), { done: false, value: 'before' });
    await rejectsWithStatus(within(conversation.next(), 1000, 'waiting past the deadline'), Status.DEADLINE_EXCEEDED, 'bidi');
    assertReason(await within(chat.aborted.promise, 1000, 'bidi handler signal'), Status.DEADLINE_EXCEEDED, 'bidi deadline');
    await within(chat.returned.promise, 1000, 'bidi handler returned');
    assertStatus(chat.requestError, Status.DEADLINE_EXCEEDED, "the bidi handler's request iterator");
    await streamsGone(caller, callee, 'after the deadlines');
  });
});

// ---------------------------------------------------------------- the session closing under a stream

void describe('streams: the session closing', () => {
  testConnTypes('a graceful close (either side) lets a stream in flight finish; new calls are refused, retry-safe', async (env) => {
    for (const closer of ['caller', 'callee'] as const) {
      const { caller, callee } = await env.open({ services: [streams()] });
      const c = caller.client(Streams);
      const stream = c.ticks(1);
      assert.deepEqual(await within(stream.next(), 2000, 'first tick'), { done: false, value: 0 });
      const closing = (closer === 'caller' ? caller : callee).close({ graceMs: 5000 });
      let settled = false;
      void closing.then(() => (settled = true));
      const more: number[] = [];
      for (let i = 1; i <= 20; i++) {
        const next = await within(stream.next(), 2000, `tick ${i} while ${closer} closes`);
        assert.equal(next.done, false);
        more.push(next.value as number);
      }
      assert.deepEqual(more, Array.from({ length: 20 }, (_, i) => i + 1), `the stream goes on while the ${closer} closes`);
      assert.equal(settled, false, 'the close waits for the stream');
      await until(() => !caller.core.isOpen, 2000, 'the caller knows the session is closing');
      const { error } = await readUntilError(c.tail({ n: 1 }), 2000, 'a new call');
      assertStatus(error, Status.UNAVAILABLE, `a new call while the ${closer} closes`);
      assert.equal(error.retrySafe, true);
      await stream.return(); // done reading: the stream ends, and so does the session
      await within(closing, 3000, 'the close completes');
    }
  });

  testConnTypes('the connection lost mid-stream: the reader and a bidi sender get UNAVAILABLE, the handler signal aborts', async (env) => {
    const ticks = probe();
    const { caller, callee } = await env.open({
      services: [
        streams({
          async *ticks(everyMs, ctx) {
            enter(ticks, ctx.signal);
            try {
              for (let i = 0; ; i++) {
                yield i;
                await sleep(everyMs);
              }
            } finally {
              ticks.returned.resolve();
            }
          },
        }),
      ],
    });
    const c = caller.client(Streams);
    const stream = c.ticks(2);
    const chat = c.chat();
    await chat.send('hello');
    assert.deepEqual(await within(chat.next(), 2000, 'chat reply'), { done: false, value: 'HELLO' });
    assert.deepEqual(await within(stream.next(), 2000, 'first tick'), { done: false, value: 0 });
    callee.destroy();
    const { error } = await readUntilError(stream, 2000, 'ticks after the loss');
    assertStatus(error, Status.UNAVAILABLE, 'the reader');
    await rejectsWithStatus(within(chat.next(), 2000, 'chat after the loss'), Status.UNAVAILABLE, 'the bidi reader');
    await rejectsWithStatus(chat.send('anyone?'), Status.UNAVAILABLE, 'the bidi sender');
    assertReason(await within(ticks.aborted.promise, 2000, 'handler signal'), Status.UNAVAILABLE, 'connection lost');
    await within(ticks.returned.promise, 2000, 'the handler returned');
  });
});

// ---------------------------------------------------------------- many streams on one connection

const manyKinds: ConnTestOptions = { kinds: ['memory', 'tcp', 'unix'], timeout: 20_000 };

void describe('streams: many at once', () => {
  testConnTypes(
    '100 concurrent serverStreams of 50 responses each complete intact, and their responses interleave',
    async (env) => {
      const { caller, callee } = await env.open({ services: [streams()] });
      const c = caller.client(Streams);
      const arrivals: number[] = [];
      const results = await within(
        Promise.all(
          Array.from({ length: 100 }, async (_, tag) => {
            const got: Item[] = [];
            for await (const item of c.tail({ n: 50, size: 512, tag })) {
              arrivals.push(tag);
              got.push(item);
            }
            return got;
          }),
        ),
        15_000,
        '100 streams',
      );
      results.forEach((got, tag) => {
        assert.equal(got.length, 50, `stream ${tag}: count`);
        got.forEach((item, i) => {
          assert.equal(item.tag, tag, `stream ${tag} item ${i}: tag`);
          assert.equal(item.i, i, `stream ${tag}: order`);
          assertBytes(item.data, blob(i, 512), `stream ${tag} item ${i}`);
        });
      });
      // interleaving: how many streams were part-way through at once (one after another would be 1)
      const first = new Map<number, number>();
      const last = new Map<number, number>();
      arrivals.forEach((tag, at) => {
        if (!first.has(tag)) first.set(tag, at);
        last.set(tag, at);
      });
      let open = 0;
      let peak = 0;
      arrivals.forEach((tag, at) => {
        if (first.get(tag) === at) open++;
        peak = Math.max(peak, open);
        if (last.get(tag) === at) open--;
      });
      let switches = 0;
      for (let at = 1; at < arrivals.length; at++) if (arrivals[at] !== arrivals[at - 1]) switches++;
      assert.ok(peak >= 20, `at least 20 streams in progress at once (peak ${peak})`);
      assert.ok(switches >= 500, `responses of different streams alternate (${switches} switches; one stream after another gives 99)`);
      await streamsGone(caller, callee, 'after 100 streams');
    },
    manyKinds,
  );
});
