/**
 * Bulk byte streams end to end, over every transport (memory, TCP, Unix) and in both directions: every kind of body a
 * caller or handler may give (one Uint8Array, an array, a sync or async generator, a Node Readable, a file's read
 * stream), a download piped into a Node Writable with stream/promises' pipeline, empty bodies, chunks larger than a
 * frame and than the bulk window, thousands of tiny chunks, small frames and windows, sixteen transfers at once on one
 * connection, and 1 GiB each way over TCP loopback (forward only) with the sha256 of both ends compared.
 *
 * What a user relies on: the receiver sees exactly the bytes the sender gave, in order, and a clean end only after the
 * sender ended cleanly.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, type TestContext } from 'node:test';

import { serve, type ByteSource, type ServiceImpl } from '../../src/index.js';
import {
  Bulk,
  CHUNK_BYTES,
  MiB,
  patternBytes,
  patternChunks,
  patternSha256,
  sha256Of,
  Tally,
  type GetRequest,
} from '../fixtures/bulk.js';
import { testConnTypes, within } from '../helpers.js';

const GiB = 1024 * MiB;
/** Not a multiple of any frame or chunk size, so the last frame is a short one. */
const SIZE = 3 * MiB + 12_345;

/** A temp file in os.tmpdir(), deleted after the test (even when it fails). */
async function tempFile(t: TestContext, contents?: Uint8Array): Promise<string> {
  const path = join(tmpdir(), `gw-bulk-${process.pid}-${randomBytes(6).toString('hex')}.bin`);
  t.after(() => rm(path, { force: true }));
  if (contents !== undefined) await writeFile(path, contents);
  return path;
}

/** An async generator that sometimes waits a turn and yields empty chunks between real ones (which carry nothing). */
async function* slowish(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let i = 0;
  for (const chunk of chunks) {
    if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    if (i % 5 === 0) yield new Uint8Array(0);
    yield chunk;
    i++;
  }
  yield new Uint8Array(0);
}

/** The pattern re-cut into 100-byte chunks: Buffer.from copies each into Node's shared pool, a view at an offset. */
function* tinyChunks(size: number): Generator<Uint8Array> {
  const all = patternBytes(size);
  for (let at = 0; at < size; at += 100) yield Buffer.from(all.subarray(at, Math.min(size, at + 100)));
}

/** The body a download handler returns, by the request's kind. */
function downloadSource(req: GetRequest): ByteSource {
  const chunkBytes = req.chunkBytes ?? CHUNK_BYTES;
  switch (req.kind) {
    case 'bytes':
      return patternBytes(req.bytes, chunkBytes);
    case 'array':
      return [...patternChunks(req.bytes, chunkBytes)];
    case 'sync-generator':
      return patternChunks(req.bytes, chunkBytes);
    case 'generator':
      return slowish(patternChunks(req.bytes, chunkBytes));
    case 'readable':
      return Readable.from(patternChunks(req.bytes, chunkBytes));
    case 'file':
      return createReadStream(req.path!);
    case 'tiny':
      return tinyChunks(req.bytes);
    default:
      throw new Error(`unknown kind ${req.kind}`);
  }
}

/** put: tallies the body; get: sends what downloadSource makes. */
function bulkService(): ServiceImpl {
  return serve(Bulk, {
    async put(req, body) {
      const tally = new Tally();
      for await (const chunk of body) tally.add(chunk);
      return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
    },
    // 'promise': an async handler that resolves to its source later (here a file's read stream)
    get: (req) => (req.kind === 'promise' ? later(() => downloadSource({ ...req, kind: 'file' })) : downloadSource(req)),
    echo: (s) => s,
  });
}

async function later<T>(make: () => T): Promise<T> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  return make();
}

async function tallyOf(chunks: AsyncIterable<Uint8Array>): Promise<Tally> {
  const tally = new Tally();
  for await (const chunk of chunks) tally.add(chunk);
  return tally;
}

void describe('bulk round trips', () => {
  testConnTypes('upload: a Uint8Array, an array, generators, Readable.from and fs.createReadStream arrive whole', async (env, t) => {
    const { caller } = await env.open({ services: [bulkService()] });
    const files = caller.client(Bulk);
    const expected = patternSha256(SIZE);
    const path = await tempFile(t, patternBytes(SIZE));
    const bodies: Array<[string, () => ByteSource]> = [
      ['Uint8Array', () => patternBytes(SIZE)],
      ['array', () => [...patternChunks(SIZE)]],
      ['sync generator', () => patternChunks(SIZE)],
      ['async generator with empty chunks', () => slowish(patternChunks(SIZE))],
      ['Readable.from', () => Readable.from(patternChunks(SIZE))],
      ['fs.createReadStream', () => createReadStream(path)],
      ['fs.createReadStream, 1 MiB reads', () => createReadStream(path, { highWaterMark: MiB })],
    ];
    for (const [name, body] of bodies) {
      const result = await within(files.put({ name }, body()), 5000, name);
      assert.equal(result.name, name, 'the request message reaches the handler');
      assert.equal(result.bytes, SIZE, `${name}: byte count`);
      assert.equal(result.sha256, expected, `${name}: sha256`);
    }
    assert.equal(caller.core.streamCount, 0);
  });

  testConnTypes('download: a Uint8Array, an array, generators, Readable.from, fs.createReadStream (also from an async handler) arrive whole', async (env, t) => {
    const { caller } = await env.open({ services: [bulkService()] });
    const files = caller.client(Bulk);
    const expected = patternSha256(SIZE);
    const path = await tempFile(t, patternBytes(SIZE));
    for (const kind of ['bytes', 'array', 'sync-generator', 'generator', 'readable', 'file', 'promise']) {
      const tally = await within(tallyOf(files.get({ bytes: SIZE, kind, path })), 5000, kind);
      assert.equal(tally.bytes, SIZE, `${kind}: byte count`);
      assert.equal(tally.sha256, expected, `${kind}: sha256`);
    }
    assert.equal(caller.core.streamCount, 0);
  });

  testConnTypes('download piped into a Node Writable with stream/promises pipeline: a file and a custom Writable', async (env, t) => {
    const { caller } = await env.open({ services: [bulkService()] });
    const files = caller.client(Bulk);
    const expected = patternSha256(SIZE);
    const path = await tempFile(t);
    await within(pipeline(files.get({ bytes: SIZE, kind: 'generator' }), createWriteStream(path)), 5000, 'pipeline to a file');
    const written = await readFile(path);
    assert.equal(written.length, SIZE);
    assert.equal(sha256Of(written), expected);

    const tally = new Tally();
    const slowSink = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        tally.add(chunk);
        // a sink slower than the network: pipeline must wait for it, and nothing may be lost meanwhile
        if (tally.chunks % 8 === 0) setTimeout(callback, 1);
        else callback();
      },
    });
    await within(pipeline(files.get({ bytes: SIZE, kind: 'readable' }), slowSink), 5000, 'pipeline to a Writable');
    assert.equal(tally.bytes, SIZE);
    assert.equal(tally.sha256, expected);
  });

  testConnTypes('empty bodies: uploads and downloads of zero bytes end cleanly with no chunk', async (env) => {
    const seen: number[] = [];
    const service = serve(Bulk, {
      async put(req, body) {
        const tally = new Tally();
        for await (const chunk of body) tally.add(chunk);
        seen.push(tally.chunks);
        return { name: req.name, bytes: tally.bytes, chunks: tally.chunks, sha256: tally.sha256 };
      },
      get(req) {
        switch (req.kind) {
          case 'bytes':
            return new Uint8Array(0);
          case 'array':
            return [];
          case 'empty chunks':
            return [new Uint8Array(0), new Uint8Array(0)];
          case 'readable':
            return Readable.from([]);
          default:
            return (async function* () {})();
        }
      },
      echo: (s) => s,
    });
    const { caller } = await env.open({ services: [service] });
    const files = caller.client(Bulk);
    const empty = sha256Of(new Uint8Array(0));
    const bodies: Array<[string, ByteSource]> = [
      ['Uint8Array', new Uint8Array(0)],
      ['array', []],
      ['empty chunks', [new Uint8Array(0), new Uint8Array(0)]],
      ['generator', (async function* () {})()],
      ['Readable.from', Readable.from([])],
    ];
    for (const [name, body] of bodies) {
      const result = await within(files.put({ name }, body), 2000, name);
      assert.deepEqual(result, { name, bytes: 0, chunks: 0, sha256: empty }, name);
    }
    assert.deepEqual(seen, [0, 0, 0, 0, 0]);
    for (const kind of ['bytes', 'array', 'empty chunks', 'readable', 'generator']) {
      const tally = await within(tallyOf(files.get({ bytes: 0, kind })), 2000, kind);
      assert.equal(tally.chunks, 0, `${kind}: no chunk`);
    }
  });

  testConnTypes('chunks larger than a frame (1 MiB) and than the bulk window (5 MiB) arrive whole, both ways', async (env) => {
    const { caller } = await env.open({ services: [bulkService()] });
    const files = caller.client(Bulk);
    const size = 8 * MiB + 1;
    const expected = patternSha256(size, MiB);
    const up = await within(files.put({ name: '1 MiB chunks' }, patternChunks(size, MiB)), 5000, 'upload');
    assert.equal(up.bytes, size);
    assert.equal(up.sha256, expected);
    const down = await within(tallyOf(files.get({ bytes: size, kind: 'sync-generator', chunkBytes: MiB })), 5000, 'download');
    assert.equal(down.bytes, size);
    assert.equal(down.sha256, expected);

    const big = 5 * MiB + 3;
    const bigSha = sha256Of(patternBytes(big, big));
    const oneUp = await within(files.put({ name: 'one 5 MiB chunk' }, [patternBytes(big, big)]), 5000, 'upload of one chunk');
    assert.equal(oneUp.bytes, big);
    assert.equal(oneUp.sha256, bigSha);
    const oneDown = await within(tallyOf(files.get({ bytes: big, kind: 'bytes', chunkBytes: big })), 5000, 'download of one chunk');
    assert.equal(oneDown.bytes, big);
    assert.equal(oneDown.sha256, bigSha);
  });

  testConnTypes('many tiny chunks (100 bytes, slices of Node\'s shared Buffer pool) arrive whole, both ways', async (env) => {
    const { caller } = await env.open({ services: [bulkService()] });
    const files = caller.client(Bulk);
    const size = 256 * 1024 + 7;
    const expected = patternSha256(size);
    const up = await within(files.put({ name: 'tiny' }, tinyChunks(size)), 5000, 'upload');
    assert.equal(up.bytes, size);
    assert.equal(up.sha256, expected);
    const down = await within(tallyOf(files.get({ bytes: size, kind: 'tiny' })), 5000, 'download');
    assert.equal(down.bytes, size);
    assert.equal(down.sha256, expected);
  });

  testConnTypes(
    'small frames and windows on both sides (16 KiB frames, bulk, stream and connection windows), 100 000-byte chunks',
    async (env) => {
      const tight = { maxFrameBytes: 16 * 1024, bulkWindow: 16 * 1024, connectionWindow: 16 * 1024, initialStreamWindow: 16 * 1024 };
      const { caller } = await env.open({ services: [bulkService()], caller: tight, callee: tight });
      const files = caller.client(Bulk);
      const size = 2 * MiB + 7;
      const expected = patternSha256(size, 100_000);
      const up = await within(files.put({ name: 'tight' }, patternChunks(size, 100_000)), 5000, 'upload');
      assert.equal(up.bytes, size);
      assert.equal(up.sha256, expected);
      const down = await within(tallyOf(files.get({ bytes: size, kind: 'generator', chunkBytes: 100_000 })), 5000, 'download');
      assert.equal(down.bytes, size);
      assert.equal(down.sha256, expected);
    },
  );
});

void describe('bulk: many transfers on one connection', () => {
  testConnTypes(
    'eight uploads and eight downloads at once, with a connection window (256 KiB) smaller than their bulk windows: all whole',
    async (env) => {
      const small = { connectionWindow: 256 * 1024 };
      const { caller } = await env.open({ services: [bulkService()], caller: small, callee: small });
      const files = caller.client(Bulk);
      const sizes = Array.from({ length: 8 }, (_, i) => 2 * MiB + i * 40_961);
      const uploads = sizes.map((size, i) => files.put({ name: `up ${i}` }, slowish(patternChunks(size))));
      const downloads = sizes.map((size) => tallyOf(files.get({ bytes: size, kind: 'generator' })));
      const [up, down] = await within(Promise.all([Promise.all(uploads), Promise.all(downloads)]), 10_000, 'sixteen transfers');
      sizes.forEach((size, i) => {
        const expected = patternSha256(size);
        assert.equal(up[i]!.name, `up ${i}`);
        assert.equal(up[i]!.bytes, size, `upload ${i}: byte count`);
        assert.equal(up[i]!.sha256, expected, `upload ${i}: sha256`);
        assert.equal(down[i]!.bytes, size, `download ${i}: byte count`);
        assert.equal(down[i]!.sha256, expected, `download ${i}: sha256`);
      });
    },
    { timeout: 15_000 },
  );
});

void describe('bulk: 1 GiB over TCP loopback', () => {
  /** The sender hashes what it hands over, the receiver what it gets: both must agree, byte for byte. */
  function* tapped(total: number, tally: Tally): Generator<Uint8Array> {
    for (const chunk of patternChunks(total)) {
      tally.add(chunk);
      yield chunk;
    }
  }

  testConnTypes(
    'T-S6 1 GiB upload: the sha256 of both ends match',
    async (env, t) => {
      const received = new Tally();
      const service = serve(Bulk, {
        async put(req, body) {
          for await (const chunk of body) received.add(chunk);
          return { name: req.name, bytes: received.bytes, chunks: received.chunks, sha256: received.sha256 };
        },
        get: () => new Uint8Array(0),
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const sent = new Tally();
      const start = performance.now();
      const result = await caller.client(Bulk).put({ name: 'big' }, tapped(GiB, sent));
      const seconds = (performance.now() - start) / 1000;
      t.diagnostic(`1 GiB upload in ${seconds.toFixed(1)} s (${(1024 / seconds).toFixed(0)} MiB/s, both ends hashing)`);
      assert.equal(sent.bytes, GiB);
      assert.equal(result.bytes, GiB);
      assert.equal(received.sha256, sent.sha256);
      assert.equal(result.sha256, sent.sha256);
    },
    { kinds: ['tcp'], directions: ['forward'], timeout: 60_000 },
  );

  testConnTypes(
    'T-S6 1 GiB download: the sha256 of both ends match',
    async (env, t) => {
      const sent = new Tally();
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        get: (req) => tapped(req.bytes, sent),
        echo: (s) => s,
      });
      const { caller } = await env.open({ services: [service] });
      const start = performance.now();
      const received = await tallyOf(caller.client(Bulk).get({ bytes: GiB }));
      const seconds = (performance.now() - start) / 1000;
      t.diagnostic(`1 GiB download in ${seconds.toFixed(1)} s (${(1024 / seconds).toFixed(0)} MiB/s, both ends hashing)`);
      assert.equal(received.bytes, GiB);
      assert.equal(sent.bytes, GiB);
      assert.equal(received.sha256, sent.sha256);
    },
    { kinds: ['tcp'], directions: ['forward'], timeout: 60_000 },
  );
});
