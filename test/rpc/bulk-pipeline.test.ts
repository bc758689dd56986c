/**
 * The common way to receive a bulk body into a Node Writable (a file, a socket, stdout): `pipeline(body, writable)`.
 * Back pressure goes all the way to the sender: a Writable that is slow to take what it is given holds the download's
 * producer to the stream's window (bulkWindow) plus the sender's queue and a few chunks, never more, and the body
 * arrives whole and in order.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';

import { createMemoryPair, createSession, serve } from '../../src/index.js';
import { Bulk, CHUNK_BYTES, MiB, patternChunk, patternChunks } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

const TOTAL = 8 * MiB;
const BULK_WINDOW = MiB;
/** The sender's queue (at most 256 KiB for a bulk body while credit lets it out) and a few chunks in hand. */
const SLACK = 256 * 1024 + 4 * CHUNK_BYTES;

void describe('a download piped into a slow Node Writable', () => {
  void test('pipeline(body, writable): the producer stays within the bulk window (+ slack) of what the Writable took; the body is whole', async (t) => {
    let produced = 0;
    let written = 0;
    let maxAhead = 0;
    const [a, b] = createMemoryPair();
    const impl = serve(Bulk, {
      put: () => Promise.reject(new Error('unused')),
      *get() {
        for (let i = 0; produced < TOTAL; i++) {
          const chunk = patternChunk(i, Math.min(CHUNK_BYTES, TOTAL - produced));
          produced += chunk.length;
          maxAhead = Math.max(maxAhead, produced - written);
          yield chunk;
        }
      },
      echo: (s: string) => s,
    });
    const server = createSession(b, 'acceptor', { services: [impl] });
    const client = createSession(a, 'dialer');
    t.after(() => {
      client.destroy();
      server.destroy();
    });
    const hash = createHash('sha256');
    // takes each chunk a macrotask later, with a small buffer: pipeline waits for 'drain' most of the time
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        setImmediate(() => {
          hash.update(chunk);
          written += chunk.length;
          callback();
        });
      },
    });
    await within(pipeline(client.client(Bulk).get({ bytes: TOTAL }), slow), 20_000, 'pipeline');
    assert.equal(written, TOTAL);
    const expected = createHash('sha256');
    for (const chunk of patternChunks(TOTAL)) expected.update(chunk);
    assert.equal(hash.digest('hex'), expected.digest('hex'));
    assert.ok(maxAhead <= BULK_WINDOW + SLACK, `the producer got ${maxAhead} bytes ahead of the Writable (bound ${BULK_WINDOW + SLACK})`);
  });
});
