/**
 * A bulk transfer whose connection goes away: the sending (or receiving) process is SIGKILLed (a child process running
 * test/fixtures/bulk-peer.ts), or a TCP proxy between the two sessions cuts the connection in the middle of a DATA
 * frame, exactly at a frame boundary, or with a TCP reset. The receiver must get UNAVAILABLE, never a clean end: a body
 * that ends early and looks complete is the one failure a user cannot detect. Also, over the in-memory pair and TCP in
 * both directions: a graceful close() lets transfers in flight finish whole, and destroy() fails both ends of them.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';

import {
  connect,
  listen,
  RpcError,
  serve,
  Status,
  statusName,
  type ByteSource,
  type CallContext,
  type RpcSession,
  type Server,
  type ServiceImpl,
} from '../../src/index.js';
import { FRAME_HEADER_BYTES, FrameType } from '../../src/wire/constants.js';
import { Bulk, CHUNK_BYTES, KiB, MiB, patternChunk, patternChunks, patternSha256, Tally, type GetRequest } from '../fixtures/bulk.js';
import { deferred, rejectsWithStatus, testConnTypes, until, within } from '../helpers.js';
import { startTcpProxy } from '../fixtures/tcp-proxy.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PEER = fileURLToPath(new URL('../fixtures/bulk-peer.ts', import.meta.url));

function assertUnavailable(error: unknown, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, Status.UNAVAILABLE, `${what}: expected UNAVAILABLE, got ${statusName(error.code)} (${error.message})`);
}

/** What an upload handler saw: its bytes, and how its body ended. */
class Receiver {
  readonly tally = new Tally();
  readonly finished = deferred();
  bodyError: unknown;
  cleanEnd = false;
  ctx: CallContext | undefined;

  /** Bulk with this receiver as the upload handler, and `get` as the download's. */
  service(get: (req: GetRequest) => ByteSource = () => []): ServiceImpl {
    return serve(Bulk, {
      put: async (req, body, ctx) => {
        this.ctx = ctx;
        try {
          for await (const chunk of body) this.tally.add(chunk);
          this.cleanEnd = true;
        } catch (error) {
          this.bodyError = error;
          throw error;
        } finally {
          this.finished.resolve();
        }
        return { name: req.name, bytes: this.tally.bytes, chunks: this.tally.chunks, sha256: this.tally.sha256 };
      },
      get,
      echo: (s) => s,
    });
  }
}

/** A producer that never ends; `stopped` resolves when its `finally` runs. */
class Endless {
  readonly stopped = deferred();

  async *chunks(): AsyncGenerator<Uint8Array> {
    try {
      for (let i = 0; ; i++) yield patternChunk(i, CHUNK_BYTES);
    } finally {
      this.stopped.resolve();
    }
  }
}

/** Reads a byte stream; the error it threw instead of ending, if any. */
async function drain(stream: AsyncIterable<Uint8Array>, onChunk?: (tally: Tally) => void): Promise<{ tally: Tally; error: unknown; ended: boolean }> {
  const tally = new Tally();
  try {
    for await (const chunk of stream) {
      tally.add(chunk);
      onChunk?.(tally);
    }
    return { tally, error: undefined, ended: true };
  } catch (error) {
    return { tally, error, ended: false };
  }
}

async function listenAfter(t: TestContext, services: ServiceImpl[]): Promise<Server> {
  const server = await listen('tcp://127.0.0.1:0', { services });
  t.after(async () => {
    for (const s of server.sessions) s.destroy();
    await within(server.close({ graceMs: 0 }), 3000, 'server close');
  });
  return server;
}

async function connectAfter(t: TestContext, url: string): Promise<RpcSession> {
  const session = await connect(url);
  t.after(() => session.destroy());
  return session;
}

// ---------------------------------------------------------------- the sender's process is killed

interface Peer {
  child: ChildProcess;
  /** The first line the child printed. */
  ready: Promise<string>;
}

/** Starts test/fixtures/bulk-peer.ts; it is SIGKILLed after the test whatever happens. */
function spawnPeer(t: TestContext, args: string[]): Peer {
  const child = spawn(process.execPath, ['--import', 'tsx', PEER, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin?.destroy();
  });
  const ready = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve(out.slice(0, newline));
    });
    child.once('exit', (code, signal) => reject(new Error(`bulk-peer exited (${code ?? signal}) before it was ready: ${stderr}`)));
    child.once('error', reject);
  });
  ready.catch(() => undefined);
  return { child, ready };
}

function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
}

void describe('bulk: the sending process is killed (SIGKILL)', () => {
  void test('T-X1 upload from a child process that is killed mid-transfer: the handler body throws UNAVAILABLE, never ends', { timeout: 20_000 }, async (t) => {
    const receiver = new Receiver();
    const server = await listenAfter(t, [receiver.service()]);
    const peer = spawnPeer(t, ['upload', server.url]);
    assert.equal(await within(peer.ready, 10_000, 'the child started'), 'uploading');
    await until(() => receiver.tally.bytes >= 4 * MiB, 10_000, 'the handler got 4 MiB');
    await kill(peer.child);
    await within(receiver.finished.promise, 5000, 'the handler body ended');
    assert.equal(receiver.cleanEnd, false, 'never a clean end');
    assertUnavailable(receiver.bodyError, "the handler's body");
    assertUnavailable(receiver.ctx?.signal.reason, "the handler's signal");
    assert.equal(receiver.tally.sha256, patternSha256(receiver.tally.bytes), 'what came is a prefix of what was sent');
  });

  void test('T-X1 download from a child process that is killed mid-transfer: the for-await throws UNAVAILABLE, never ends', { timeout: 20_000 }, async (t) => {
    const peer = spawnPeer(t, ['serve']);
    const line = await within(peer.ready, 10_000, 'the child started');
    const url = /^listening (\S+)$/.exec(line)?.[1];
    assert.ok(url !== undefined, `the child printed ${line}`);
    const session = await connectAfter(t, url);
    let killed: Promise<void> | undefined;
    const result = await within(
      drain(session.client(Bulk).get({ bytes: 0 }), (tally) => {
        if (tally.bytes >= 4 * MiB) killed ??= kill(peer.child);
      }),
      10_000,
      'download',
    );
    await killed;
    assert.equal(result.ended, false, 'never a clean end');
    assertUnavailable(result.error, 'the download');
    assert.ok(result.tally.bytes >= 4 * MiB);
    assert.equal(result.tally.sha256, patternSha256(result.tally.bytes), 'what came is a prefix of what was sent');
  });
});

void describe('bulk: the receiving process is killed (SIGKILL)', () => {
  void test('T-X1 upload to a child process that is killed mid-transfer: the call rejects UNAVAILABLE and the source is stopped', { timeout: 20_000 }, async (t) => {
    const peer = spawnPeer(t, ['serve']);
    const url = /^listening (\S+)$/.exec(await within(peer.ready, 10_000, 'the child started'))?.[1];
    assert.ok(url !== undefined);
    const session = await connectAfter(t, url);
    const source = new Endless();
    let sent = 0;
    const counted = (async function* () {
      for await (const chunk of source.chunks()) {
        sent += chunk.length;
        yield chunk;
      }
    })();
    const call = session.client(Bulk).put({ name: 'to the child' }, counted);
    await until(() => sent >= 4 * MiB, 10_000, '4 MiB sent');
    await kill(peer.child);
    await within(rejectsWithStatus(call, Status.UNAVAILABLE, 'the upload'), 5000, 'the upload to fail');
    await within(source.stopped.promise, 2000, "the source's finally");
  });

  void test("T-X1 download by a child process that is killed mid-transfer: the handler's signal aborts and its generator is stopped", { timeout: 20_000 }, async (t) => {
    const source = new Endless();
    let ctx: CallContext | undefined;
    let sent = 0;
    const service = serve(Bulk, {
      put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
      async *get(_req, c) {
        ctx = c;
        for await (const chunk of source.chunks()) {
          sent += chunk.length;
          yield chunk;
        }
      },
      echo: (s) => s,
    });
    const server = await listenAfter(t, [service]);
    const peer = spawnPeer(t, ['download', server.url]);
    assert.equal(await within(peer.ready, 10_000, 'the child started'), 'downloading');
    await until(() => sent >= 4 * MiB, 10_000, '4 MiB sent');
    await kill(peer.child);
    await within(source.stopped.promise, 5000, "the handler's generator's finally");
    assertUnavailable(ctx?.signal.reason, "the handler's signal");
    await until(() => server.sessions.size === 0, 2000, 'the server dropped the session');
  });
});

// ---------------------------------------------------------------- the connection is cut

type Cut = 'mid-frame' | 'boundary' | 'reset';

/**
 * A TCP proxy that forwards both ways and, once `afterBytes` of DATA payload have gone in the watched direction,
 * cuts the connection: 'mid-frame' forwards the header and 5 payload bytes of the next DATA frame (15 bytes into it,
 * an odd offset) and then ends that side and destroys the other; 'boundary' does the same right after a DATA frame
 * ends; 'reset' forwards up to the same mid-frame point and then resets both sockets (TCP RST).
 */
class CuttingProxy {
  readonly cutDone = deferred<{ at: number; dataBytes: number }>();
  url = '';

  private constructor(
    private readonly watch: 'up' | 'down',
    private readonly cut: Cut,
    private readonly afterBytes: number,
  ) {}

  static async start(t: TestContext, targetUrl: string, watch: 'up' | 'down', cut: Cut, afterBytes: number): Promise<CuttingProxy> {
    const proxy = new CuttingProxy(watch, cut, afterBytes);
    proxy.url = await startTcpProxy(t, targetUrl, (client, upstream) => proxy.onConnection(client, upstream));
    return proxy;
  }

  private onConnection(client: Socket, upstream: Socket): void {
    client.pause();
    upstream.once('connect', () => client.resume());
    const [src, dst] = this.watch === 'up' ? [client, upstream] : [upstream, client];
    const [backSrc, backDst] = [dst, src];
    let cutting = false;
    backSrc.on('data', (chunk: Buffer) => {
      if (!cutting) backDst.write(chunk);
    });
    backSrc.on('end', () => backDst.end());

    // frame boundaries of the watched direction
    let position = 0;
    const header = Buffer.alloc(FRAME_HEADER_BYTES);
    let headerFill = 0;
    let payloadLeft = 0;
    let inData = false;
    let dataBytes = 0;
    let cutAt: number | undefined;
    const scan = (chunk: Buffer): void => {
      let i = 0;
      while (i < chunk.length && cutAt === undefined) {
        if (payloadLeft === 0) {
          const n = Math.min(FRAME_HEADER_BYTES - headerFill, chunk.length - i);
          chunk.copy(header, headerFill, i, i + n);
          headerFill += n;
          i += n;
          if (headerFill < FRAME_HEADER_BYTES) continue;
          headerFill = 0;
          inData = header[0] === FrameType.DATA;
          payloadLeft = header.readUInt32BE(6);
          if (inData && dataBytes >= this.afterBytes && payloadLeft > 5 && this.cut !== 'boundary') cutAt = position + i + 5;
        } else {
          const n = Math.min(payloadLeft, chunk.length - i);
          payloadLeft -= n;
          i += n;
          if (inData) dataBytes += n;
          if (payloadLeft === 0 && inData && dataBytes >= this.afterBytes && this.cut === 'boundary') cutAt = position + i;
        }
      }
      position += chunk.length;
    };
    src.on('data', (chunk: Buffer) => {
      if (cutting) return;
      const start = position;
      if (cutAt === undefined) scan(chunk);
      else position += chunk.length;
      if (cutAt === undefined || cutAt > start + chunk.length) {
        dst.write(chunk);
        return;
      }
      cutting = true;
      const last = chunk.subarray(0, cutAt - start);
      this.cutDone.resolve({ at: cutAt, dataBytes });
      if (this.cut === 'reset') {
        dst.write(last, () => dst.resetAndDestroy());
        src.resetAndDestroy();
      } else {
        dst.end(last);
        src.destroy();
      }
    });
    src.on('end', () => {
      if (!cutting) dst.end();
    });
  }
}

void describe('bulk: the connection is cut (TCP proxy)', () => {
  const AFTER = 2 * MiB;

  for (const cut of ['mid-frame', 'boundary', 'reset'] as const) {
    void test(`T-X3 upload, cut ${cut}: the handler body throws UNAVAILABLE, never ends; the caller gets UNAVAILABLE`, { timeout: 10_000 }, async (t) => {
      const receiver = new Receiver();
      const server = await listenAfter(t, [receiver.service()]);
      const proxy = await CuttingProxy.start(t, server.url, 'up', cut, AFTER);
      const session = await connectAfter(t, proxy.url);
      const source = new Endless();
      const call = session.client(Bulk).put({ name: 'cut' }, source.chunks());
      await within(rejectsWithStatus(call, Status.UNAVAILABLE, 'the upload'), 5000, 'the upload to fail');
      const { at } = await within(proxy.cutDone.promise, 1000, 'the cut');
      await within(receiver.finished.promise, 5000, 'the handler body ended');
      assert.equal(receiver.cleanEnd, false, 'never a clean end');
      assertUnavailable(receiver.bodyError, "the handler's body");
      // after a TCP reset the receiver's kernel may drop what it had not handed over yet
      if (cut !== 'reset') assert.ok(receiver.tally.bytes >= AFTER - 64 * KiB, `the handler got ${receiver.tally.bytes} bytes before the cut at byte ${at}`);
      assert.equal(receiver.tally.sha256, patternSha256(receiver.tally.bytes), 'what came is a prefix of what was sent');
      if (cut === 'mid-frame') assert.match(receiver.bodyError.message, /middle of a frame/, 'the proxy cut inside a frame');
      if (cut === 'boundary') assert.doesNotMatch(receiver.bodyError.message, /middle of a frame/, 'the proxy cut between frames');
      await within(source.stopped.promise, 2000, "the source's finally");
    });

    void test(`T-X3 download, cut ${cut}: the for-await throws UNAVAILABLE, never ends; the handler's generator is stopped`, { timeout: 10_000 }, async (t) => {
      const source = new Endless();
      const service = serve(Bulk, {
        put: () => ({ name: '', bytes: 0, chunks: 0, sha256: '' }),
        get: () => source.chunks(),
        echo: (s) => s,
      });
      const server = await listenAfter(t, [service]);
      const proxy = await CuttingProxy.start(t, server.url, 'down', cut, AFTER);
      const session = await connectAfter(t, proxy.url);
      const result = await within(drain(session.client(Bulk).get({ bytes: 0 })), 5000, 'download');
      const { at } = await within(proxy.cutDone.promise, 1000, 'the cut');
      assert.equal(result.ended, false, 'never a clean end');
      assertUnavailable(result.error, 'the download');
      if (cut !== 'reset') assert.ok(result.tally.bytes >= AFTER - 64 * KiB, `the caller got ${result.tally.bytes} bytes before the cut at byte ${at}`);
      assert.equal(result.tally.sha256, patternSha256(result.tally.bytes), 'what came is a prefix of what was sent');
      if (cut === 'mid-frame') assert.match(result.error.message, /middle of a frame/, 'the proxy cut inside a frame');
      if (cut === 'boundary') assert.doesNotMatch(result.error.message, /middle of a frame/, 'the proxy cut between frames');
      await within(source.stopped.promise, 2000, "the handler's generator's finally");
    });
  }
});

// ---------------------------------------------------------------- a session closed or destroyed on purpose

void describe('bulk: close() and destroy() during transfers', () => {
  for (const closer of ['caller', 'callee'] as const) {
    testConnTypes(
      `graceful close() by the ${closer} mid-transfer: an upload and a download in flight complete whole; new calls are UNAVAILABLE`,
      async (env) => {
        const receiver = new Receiver();
        const size = 32 * MiB;
        const service = receiver.service((req) => patternChunks(req.bytes));
        const { caller, callee } = await env.open({ services: [service], callerServices: [service] });
        const files = caller.client(Bulk);
        const upload = files.put({ name: 'up' }, patternChunks(size));
        const download = drain(files.get({ bytes: size }));
        await until(() => receiver.tally.bytes >= MiB, 5000, 'the upload under way');
        const closing = closer === 'caller' ? caller : callee;
        const closed = closing.close({ graceMs: 10_000 });
        const other = closer === 'caller' ? callee : caller;
        await rejectsWithStatus(other.client(Bulk).echo('late'), Status.UNAVAILABLE, 'a call after the GOAWAY');
        const up = await within(upload, 10_000, 'the upload');
        assert.equal(up.bytes, size);
        assert.equal(up.sha256, patternSha256(size));
        const down = await within(download, 10_000, 'the download');
        assert.equal(down.ended, true, `the download ended cleanly (${String(down.error)})`);
        assert.equal(down.tally.bytes, size);
        assert.equal(down.tally.sha256, patternSha256(size));
        await within(closed, 5000, 'close()');
        assert.equal(await within(caller.closed, 3000, 'caller closed'), undefined);
        assert.equal(await within(callee.closed, 3000, 'callee closed'), undefined);
      },
      { kinds: ['memory', 'tcp'], timeout: 20_000 },
    );

    testConnTypes(
      `destroy() by the ${closer} mid-transfer: both ends of an upload and of a download get UNAVAILABLE, never an end`,
      async (env) => {
        const receiver = new Receiver();
        const generator = new Endless();
        const service = receiver.service(() => generator.chunks());
        const { caller, callee } = await env.open({ services: [service] });
        const files = caller.client(Bulk);
        const source = new Endless();
        const upload = files.put({ name: 'up' }, source.chunks());
        upload.catch(() => undefined);
        let destroyed = false;
        const download = drain(files.get({ bytes: 0 }), (tally) => {
          if (tally.bytes >= MiB && receiver.tally.bytes >= MiB && !destroyed) {
            destroyed = true;
            (closer === 'caller' ? caller : callee).destroy();
          }
        });
        const result = await within(download, 5000, 'the download');
        assert.equal(result.ended, false, 'the download never ends');
        assertUnavailable(result.error, 'the download');
        await within(rejectsWithStatus(upload, Status.UNAVAILABLE, 'the upload'), 5000, 'the upload');
        await within(receiver.finished.promise, 5000, 'the handler body ended');
        assert.equal(receiver.cleanEnd, false, 'the upload body never ends');
        assertUnavailable(receiver.bodyError, "the handler's body");
        await within(Promise.all([source.stopped.promise, generator.stopped.promise]), 2000, "both producers' finally");
      },
      { kinds: ['memory', 'tcp'], timeout: 10_000 },
    );
  }
});
