/**
 * rpc/body-pump.ts on its own, with a `send` that records chunks and asks to wait when told to: every kind of source
 * delivers its chunks in order, waits when asked, ends after its last chunk is sent, and is let go of (destroyed,
 * cancelled, returned) when a send fails or the source itself fails. Then a web ReadableStream end to end, both ways.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession, serve } from '../../src/index.js';
import { pumpBody, type SendChunk } from '../../src/rpc/body-pump.js';
import { Bulk, MiB, patternChunks } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

/** A send that records chunks; `waitOn(i)`: the i-th send (0-based) returns a promise settled by `release`. */
function recorder(waitOn: (index: number) => boolean = () => false): {
  send: SendChunk;
  chunks: Uint8Array[];
  release(error?: Error): void;
  readonly waiting: boolean;
} {
  const chunks: Uint8Array[] = [];
  let pending: { resolve(): void; reject(error: Error): void } | undefined;
  return {
    chunks,
    send(chunk) {
      assert.equal(pending, undefined, 'send() called while the previous one still waits');
      chunks.push(chunk);
      if (!waitOn(chunks.length - 1)) return undefined;
      return new Promise<void>((resolve, reject) => (pending = { resolve, reject }));
    },
    release(error) {
      const p = pending!;
      pending = undefined;
      if (error === undefined) p.resolve();
      else p.reject(error);
    },
    get waiting() {
      return pending !== undefined;
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function bytes(...values: number[]): Buffer {
  return Buffer.from(values);
}

void describe('pumpBody: a Node Readable', () => {
  void test('chunks are sent in order as the source emits them; the source is paused while send waits, resumed after', async () => {
    const source = new Readable({ read() {} });
    const r = recorder((i) => i === 1);
    const done = pumpBody(source, r.send);
    source.push(bytes(1));
    source.push(bytes(2)); // this send waits
    await tick();
    assert.equal(r.waiting, true);
    assert.equal(source.isPaused(), true, 'paused while send waits');
    source.push(bytes(3));
    source.push(null);
    await tick();
    assert.deepEqual(r.chunks.map((c) => c[0]), [1, 2], 'nothing sent while waiting');
    r.release();
    await within(done, 1000, 'pump');
    assert.deepEqual(r.chunks.map((c) => c[0]), [1, 2, 3]);
  });

  void test('a chunk emitted while send waits (a source that ignores pause) is held and sent first, in order', async () => {
    const source = new Readable({ read() {} });
    const r = recorder((i) => i === 0);
    const done = pumpBody(source, r.send);
    source.push(bytes(1));
    await tick();
    assert.equal(r.waiting, true);
    source.emit('data', bytes(2)); // as a misbehaving source would
    source.emit('data', bytes(3));
    r.release();
    source.push(bytes(4));
    source.push(null);
    await within(done, 1000, 'pump');
    assert.deepEqual(r.chunks.map((c) => c[0]), [1, 2, 3, 4]);
  });

  void test('a source its owner paused before handing it over is still read to its end', async () => {
    const source = Readable.from([bytes(1), bytes(2)], { objectMode: false });
    source.pause();
    const r = recorder();
    await within(pumpBody(source, r.send), 1000, 'pump');
    assert.deepEqual(r.chunks.map((c) => c[0]), [1, 2]);
  });

  void test('the source ending while a send waits: the pump ends once that send may go on', async () => {
    const r = recorder((i) => i === 0);
    let ended = false;
    const done = pumpBody(Readable.from([bytes(1)], { objectMode: false }), r.send).then(() => (ended = true));
    await tick();
    await tick();
    assert.equal(ended, false);
    r.release();
    await within(done, 1000, 'pump');
  });

  void test('a send that throws, or a wait that rejects, destroys the source and rejects the pump with that error', async () => {
    const thrown = new Readable({ read() {} });
    const refused = new Error('the call is over');
    const throwing = pumpBody(thrown, () => {
      throw refused;
    });
    thrown.push(bytes(1));
    await assert.rejects(within(throwing, 1000, 'pump'), (e) => e === refused);
    assert.equal(thrown.destroyed, true);

    const waited = new Readable({ read() {} });
    const r = recorder(() => true);
    const rejecting = pumpBody(waited, r.send);
    waited.push(bytes(1));
    await tick();
    r.release(refused);
    await assert.rejects(within(rejecting, 1000, 'pump'), (e) => e === refused);
    assert.equal(waited.destroyed, true);
  });

  void test('a source that fails rejects the pump with its error; one destroyed before its end, with a premature close', async () => {
    const failing = new Readable({ read() {} });
    const done = pumpBody(failing, recorder().send);
    failing.push(bytes(1));
    failing.destroy(new Error('disk on fire'));
    await assert.rejects(within(done, 1000, 'pump'), /disk on fire/);
    const cut = new Readable({ read() {} });
    const cutDone = pumpBody(cut, recorder().send);
    cut.destroy();
    await assert.rejects(within(cutDone, 1000, 'pump'), /premature close/i);
  });
});

void describe('pumpBody: other sources', () => {
  void test('one Uint8Array is sent as views of it of at most 1 MiB, never copied; an empty one sends nothing', async () => {
    const body = new Uint8Array(2.5 * MiB);
    const r = recorder(() => true);
    const done = pumpBody(body, r.send);
    for (let i = 0; i < 3; i++) {
      await tick();
      r.release();
    }
    await within(done, 1000, 'pump');
    assert.deepEqual(r.chunks.map((c) => c.length), [MiB, MiB, MiB / 2]);
    for (const chunk of r.chunks) assert.equal(chunk.buffer, body.buffer);
    const empty = recorder();
    await pumpBody(new Uint8Array(0), empty.send);
    assert.equal(empty.chunks.length, 0);
  });

  void test('a sync iterable is sent without a promise per chunk: all of it within the call while send says go on', () => {
    const r = recorder();
    void pumpBody([bytes(1), bytes(2), bytes(3)], r.send);
    assert.equal(r.chunks.length, 3, 'sent synchronously');
  });

  void test('a web ReadableStream is read through its reader; a failed send cancels it and releases its lock', async () => {
    let cancelled: unknown;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(bytes(7));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const refused = new Error('the call is over');
    let sent = 0;
    await assert.rejects(
      within(
        pumpBody(stream, () => {
          if (++sent === 3) throw refused;
          return undefined;
        }),
        1000,
        'pump',
      ),
      (e) => e === refused,
    );
    assert.equal(cancelled, refused);
    assert.equal(stream.locked, false);
  });

  void test('a web ReadableStream that errors rejects the pump with its error', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes(1));
        controller.error(new Error('upstream failed'));
      },
    });
    await assert.rejects(within(pumpBody(stream, recorder().send), 1000, 'pump'), /upstream failed/);
  });

  void test('a failed send returns a generator (its finally blocks run), sync or async', async () => {
    const finallyRan: string[] = [];
    const refused = new Error('the call is over');
    const fail: SendChunk = () => {
      throw refused;
    };
    await assert.rejects(
      pumpBody(
        (function* body() {
          try {
            yield bytes(1);
            yield bytes(2);
          } finally {
            finallyRan.push('sync');
          }
        })(),
        fail,
      ),
      (e) => e === refused,
    );
    await assert.rejects(
      pumpBody(
        (async function* body() {
          try {
            yield bytes(1);
            yield bytes(2);
          } finally {
            finallyRan.push('async');
          }
        })(),
        fail,
      ),
      (e) => e === refused,
    );
    assert.deepEqual(finallyRan, ['sync', 'async']);
  });
});

void describe('a web ReadableStream as a bulk body, end to end', () => {
  void test('uploaded and downloaded whole and in order (8 MiB, memory pair)', async (t) => {
    const total = 8 * MiB;
    const webStream = (): ReadableStream<Uint8Array> => {
      const chunks = patternChunks(total);
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = chunks.next();
          if (next.done === true) controller.close();
          else controller.enqueue(next.value);
        },
      });
    };
    const sha = (): string => {
      const hash = createHash('sha256');
      for (const chunk of patternChunks(total)) hash.update(chunk);
      return hash.digest('hex');
    };
    const [a, b] = createMemoryPair();
    const impl = serve(Bulk, {
      async put(req, body) {
        const hash = createHash('sha256');
        let n = 0;
        for await (const chunk of body) {
          hash.update(chunk);
          n += chunk.length;
        }
        return { name: req.name, bytes: n, chunks: 0, sha256: hash.digest('hex') };
      },
      get: () => webStream(),
      echo: (s: string) => s,
    });
    const server = createSession(b, 'acceptor', { services: [impl] });
    const client = createSession(a, 'dialer');
    t.after(() => {
      client.destroy();
      server.destroy();
    });
    const bulk = client.client(Bulk);
    const up = await within(bulk.put({ name: 'web' }, webStream()), 10_000, 'upload');
    assert.equal(up.bytes, total);
    assert.equal(up.sha256, sha());
    const hash = createHash('sha256');
    let n = 0;
    for await (const chunk of bulk.get({ bytes: total })) {
      hash.update(chunk);
      n += chunk.length;
    }
    assert.equal(n, total);
    assert.equal(hash.digest('hex'), sha());
  });
});
