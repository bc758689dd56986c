/**
 * A bulk body over ws:// is not copied on receipt, as over tcp:// (test/rpc/bulk-copies.test.ts): every chunk the
 * reader of a download or the handler of an upload gets is a view of a read the socket under the WebSocket delivered,
 * including the two halves of each 64 KiB DATA payload (one WebSocket message of 65 536 bytes) that straddles two
 * socket reads. ws's own Receiver copied each such message into a buffer of its own; BinaryMessageReader hands the
 * pieces on as they are (src/transport/websocket-message-reader.ts).
 *
 * The reads are recorded by a 'data' listener put before ws's on the socket under each WebSocket (a chunk whose buffer
 * is none of them is a copy). The dialer's socket is the transport's own (read through a cast: it is private); the
 * acceptor's is the connection accepted, which the WebSocket keeps after the upgrade.
 */
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';

import { createSession, serve, type RpcSession } from '../../src/index.js';
import type { Transport } from '../../src/transport/transport.js';
import { dialWebSocket, listenWebSocket } from '../../src/transport/websocket.js';
import { Bulk, CHUNK_BYTES, MiB, patternChunks, patternSha256, Tally } from '../fixtures/bulk.js';
import { within } from '../helpers.js';

const TOTAL = 8 * MiB;
/**
 * Copies allowed per 8 MiB body, as in bulk-copies.test.ts: none comes from the receive path (before, about every
 * 64 KiB frame: ~128 here), but a small piece that waits behind another while the reader lags is packed with it
 * (inbox.ts), which a loaded machine may cause once or twice.
 */
const MAX_PACKED = 4;

interface Received {
  bytes: number;
  chunks: number;
  copies: number;
  sha256: string;
}

/** Records every read `socket` delivers, before anything else sees it. */
function recordReads(socket: Duplex, reads: WeakSet<ArrayBufferLike>): void {
  socket.prependListener('data', (chunk: Buffer) => void reads.add(chunk.buffer));
}

async function readCounting(body: AsyncIterable<Uint8Array>, reads: WeakSet<ArrayBufferLike>): Promise<Received> {
  const tally = new Tally();
  let copies = 0;
  for await (const chunk of body) {
    tally.add(chunk);
    if (!reads.has(chunk.buffer)) copies++;
  }
  return { bytes: tally.bytes, chunks: tally.chunks, copies, sha256: tally.sha256 };
}

/** A ws:// listener whose sessions serve Bulk (put reads counting) and a dialer's session to it; reads recorded on both. */
async function pair(t: TestContext): Promise<{ client: RpcSession; reads: WeakSet<ArrayBufferLike> }> {
  const reads = new WeakSet<ArrayBufferLike>();
  const impl = serve(Bulk, {
    async put(_req, body) {
      const r = await readCounting(body, reads);
      return { name: JSON.stringify(r), bytes: r.bytes, chunks: r.chunks, sha256: r.sha256 };
    },
    get: (req) => patternChunks(req.bytes),
    echo: (s: string) => s,
  });
  const servers: RpcSession[] = [];
  const listener = await listenWebSocket('ws://127.0.0.1:0/gw', (transport: Transport) => {
    recordReads((transport as unknown as { upgrading: Duplex }).upgrading, reads);
    servers.push(createSession(transport, 'acceptor', { services: [impl] }));
  });
  const transport = await dialWebSocket(listener.url);
  recordReads((transport as unknown as { socket: Duplex }).socket, reads);
  const client = createSession(transport, 'dialer');
  t.after(async () => {
    client.destroy();
    for (const s of servers) s.destroy();
    await listener.close();
  });
  return { client, reads };
}

void describe('ws:// bulk bodies are not copied on receipt', () => {
  void test('an 8 MiB ws:// download: every chunk the caller reads is a view of a socket read (ws copied each 64 KiB message that straddled two)', { timeout: 20_000 }, async (t) => {
    const { client, reads } = await pair(t);
    const received = await within(readCounting(client.client(Bulk).get({ bytes: TOTAL }), reads), 15_000, 'download');
    assert.equal(received.bytes, TOTAL);
    assert.equal(received.sha256, patternSha256(TOTAL), 'the bytes arrive intact and in order');
    assert.ok(received.copies <= MAX_PACKED, `${received.copies} of ${received.chunks} chunks were copies`);
    assert.ok(received.chunks > TOTAL / CHUNK_BYTES, `messages straddled reads (${received.chunks} chunks for ${TOTAL / CHUNK_BYTES} frames)`);
  });

  void test('an 8 MiB ws:// upload (frames masked with the zero key): every chunk the handler reads is a view of a socket read', { timeout: 20_000 }, async (t) => {
    const { client } = await pair(t);
    const reply = await within(client.client(Bulk).put({ name: 'x' }, patternChunks(TOTAL)), 15_000, 'upload');
    const received = JSON.parse(reply.name) as Received;
    assert.equal(received.bytes, TOTAL);
    assert.equal(received.sha256, patternSha256(TOTAL), 'the bytes arrive intact and in order');
    assert.ok(received.copies <= MAX_PACKED, `${received.copies} of ${received.chunks} chunks were copies`);
    assert.ok(received.chunks > TOTAL / CHUNK_BYTES, `messages straddled reads (${received.chunks} chunks for ${TOTAL / CHUNK_BYTES} frames)`);
  });
});
