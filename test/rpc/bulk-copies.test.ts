/**
 * A bulk body is not copied on receipt: every chunk the reader of an upload or a download gets is a view of a read the
 * transport delivered, including the two halves of each 64 KiB DATA frame that straddles two 64 KiB reads (most of
 * them: a frame is 64 KiB plus its 10-byte header), and the bytes arrive intact.
 *
 * The transport is the in-memory pair behind a shim that cuts what arrives into 64 KiB reads, each a buffer of its own,
 * as a socket's are, and remembers them (a counted shim: a chunk whose buffer is none of those reads is a copy).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';

import { createMemoryPair, createSession, serve, type RpcSession } from '../../src/index.js';
import type { Transport, TransportSink } from '../../src/transport/transport.js';
import { Bulk, CHUNK_BYTES, MiB, patternChunks, type GetRequest, type PutRequest } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

const READ_BYTES = 64 * 1024;
const TOTAL = 8 * MiB;

/**
 * Copies allowed per 8 MiB body: none comes from the receive path (before, every frame that straddled two reads was
 * copied: about half the chunks, ~130 here), but a small piece that waits behind another small one while the reader
 * lags is packed with it (inbox.ts: a flood of tiny frames must not pin a socket read each), and on a loaded machine
 * the reader may lag once or twice.
 */
const MAX_PACKED = 4;

/** `inner`, whose arriving bytes are cut into reads of READ_BYTES, each in a buffer of its own, recorded in `reads`. */
function socketReads(inner: Transport, reads: WeakSet<ArrayBufferLike>): Transport {
  return {
    peer: inner.peer,
    write: (chunks) => inner.write(chunks),
    end: () => inner.end(),
    destroy: (error) => inner.destroy(error),
    attach(sink: TransportSink) {
      inner.attach({
        onData(chunk) {
          for (let at = 0; at < chunk.length; at += READ_BYTES) {
            const read = chunk.slice(at, at + READ_BYTES);
            reads.add(read.buffer);
            sink.onData(read);
          }
        },
        onEnd: () => sink.onEnd(),
        onClose: (error) => sink.onClose(error),
        onDrain: () => sink.onDrain(),
      });
    },
  };
}

interface Received {
  bytes: number;
  chunks: number;
  copies: number;
  sha256: string;
}

/** Reads a body, counting the chunks that are not views of a transport read. */
async function readCounting(body: AsyncIterable<Uint8Array>, reads: WeakSet<ArrayBufferLike>): Promise<Received> {
  const hash = createHash('sha256');
  const received: Received = { bytes: 0, chunks: 0, copies: 0, sha256: '' };
  for await (const chunk of body) {
    received.bytes += chunk.length;
    received.chunks++;
    if (!reads.has(chunk.buffer)) received.copies++;
    hash.update(chunk);
  }
  received.sha256 = hash.digest('hex');
  return received;
}

function expectedSha256(): string {
  const hash = createHash('sha256');
  for (const chunk of patternChunks(TOTAL)) hash.update(chunk);
  return hash.digest('hex');
}

/** Two sessions over the shim; the server's upload handler reads with `readCounting`. */
function pair(t: TestContext): { client: RpcSession; reads: WeakSet<ArrayBufferLike> } {
  const reads = new WeakSet<ArrayBufferLike>();
  const [a, b] = createMemoryPair();
  const impl = serve(Bulk, {
    async put(_req: PutRequest, body) {
      const r = await readCounting(body, reads);
      return { name: JSON.stringify(r), bytes: r.bytes, chunks: r.chunks, sha256: r.sha256 };
    },
    get: (req: GetRequest) => patternChunks(req.bytes),
    echo: (s: string) => s,
  });
  const server = createSession(socketReads(b, reads), 'acceptor', { services: [impl] });
  const client = createSession(socketReads(a, reads), 'dialer');
  t.after(() => {
    client.destroy();
    server.destroy();
  });
  return { client, reads };
}

void describe('bulk bodies are not copied on receipt', () => {
  void test(`an 8 MiB upload of ${CHUNK_BYTES / 1024} KiB chunks read in 64 KiB reads: every chunk the handler reads is a view of a read`, async (t) => {
    const { client } = pair(t);
    const reply = await within(client.client(Bulk).put({ name: 'x' }, patternChunks(TOTAL)), 10_000, 'upload');
    const received = JSON.parse(reply.name) as Received;
    assert.equal(received.bytes, TOTAL);
    assert.equal(received.sha256, expectedSha256(), 'the bytes arrive intact and in order');
    assert.ok(received.copies <= MAX_PACKED, `${received.copies} of ${received.chunks} chunks were copies`);
    assert.ok(received.chunks > TOTAL / CHUNK_BYTES, `frames straddled reads (${received.chunks} chunks for ${TOTAL / CHUNK_BYTES} frames)`);
  });

  void test('an 8 MiB download read in 64 KiB reads: every chunk the caller reads is a view of a read', async (t) => {
    const { client, reads } = pair(t);
    const received = await within(readCounting(client.client(Bulk).get({ bytes: TOTAL }), reads), 10_000, 'download');
    assert.equal(received.bytes, TOTAL);
    assert.equal(received.sha256, expectedSha256());
    assert.ok(received.copies <= MAX_PACKED, `${received.copies} of ${received.chunks} chunks were copies`);
    assert.ok(received.chunks > TOTAL / CHUNK_BYTES, `frames straddled reads (${received.chunks} chunks for ${TOTAL / CHUNK_BYTES} frames)`);
  });
});
