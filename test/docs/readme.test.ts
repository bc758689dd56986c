/**
 * The README's one-screen example, run as a test (as connect-es runs its README): if the example stops working,
 * this fails. Kept in step with README.md by hand; the listen address is port 0 instead of 7000, and what the README
 * prints with console.log is collected and checked (the handler also notes the request-id it saw, which the README's
 * client interceptor adds).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  bidi,
  channel,
  clientStream,
  connect,
  defineService,
  download,
  listen,
  Mesh,
  RpcError,
  serve,
  serverStream,
  Status,
  statusName,
  unary,
  upload,
} from '../../src/index.js';

void test('the README example works as written', { timeout: 10_000 }, async () => {
  const Files = defineService('files.v1', {
    stat: unary<{ path: string }, { size: number }>(),
    raw: unary({ codec: 'raw' }),
  });

  const requestIds: unknown[] = [];
  const files = serve(Files, {
    async stat({ path }, ctx) {
      requestIds.push(ctx.metadata['request-id']); // not in the README: what the interceptor added
      ctx.trailer['served-by'] = 'node-a';
      if (path === '') throw new RpcError(Status.INVALID_ARGUMENT, 'empty path');
      return { size: 42 };
    },
    raw: (bytes) => bytes,
  });

  const dialedIn: string[] = [];
  const server = await listen('tcp://127.0.0.1:0', {
    services: [files],
    onSession: (s) => dialedIn.push(`${s.peer.nodeName} dialed in from ${s.peer.address}`),
  });

  // the dialing side serves too: an agent named agent7 offers Files to whoever it dials; its client interceptor tags and
  // logs every call it makes
  const logged: string[] = [];
  const session = await connect(server.url, {
    services: [files],
    nodeName: 'agent7',
    clientInterceptors: [
      (next) => async (call) => {
        call.metadata['request-id'] ??= crypto.randomUUID();
        try {
          return await next(call);
        } finally {
          logged.push(`${call.method.path} ${call.kind}`);
        }
      },
    ],
  });
  try {
    const client = session.client(Files);
    let servedBy: unknown;
    const { size } = await client.stat(
      { path: '/' },
      {
        timeoutMs: 500,
        signal: AbortSignal.timeout(1000),
        metadata: { 'request-id': 'r1' },
        onTrailer: (md) => (servedBy = md['served-by']),
      },
    );
    assert.equal(size, 42);
    assert.equal(servedBy, 'node-a');
    // the interceptor ran once, after the call, and left the caller's own request-id alone
    assert.deepEqual(logged, ['files.v1/stat unary']);
    assert.deepEqual(requestIds, ['r1']);

    // server.sessions: every connection open now; the controller calls each agent back on the agent's own connection
    assert.equal(server.sessions.size, 1);
    for (const agent of server.sessions) assert.deepEqual(await agent.client(Files).stat({ path: '/' }), { size: 42 });
    // the controller's session has no interceptors: its call back carries no request-id and logs nothing
    assert.deepEqual(requestIds, ['r1', undefined]);
    assert.equal(logged.length, 1);
    // onSession ran once the agent's handshake was done, which the call back needed
    assert.equal(dialedIn.length, 1);
    assert.match(dialedIn[0]!, /^agent7 dialed in from tcp:\/\/127\.0\.0\.1:\d+$/);

    const error = await client.stat({ path: '' }).then(
      () => assert.fail('expected INVALID_ARGUMENT'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, Status.INVALID_ARGUMENT);
    assert.equal(statusName(error.code), 'INVALID_ARGUMENT');
    assert.equal(error.rawMessage, 'empty path');
    // a call without a request-id of its own gets one from the interceptor, which sees (and logs) the failed call too
    assert.match(String(requestIds[2]), /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.deepEqual(logged, ['files.v1/stat unary', 'files.v1/stat unary']);
    // Status maps names to numbers: indexing it by a code gives no name (what statusName is for)
    assert.equal((Status as Record<string, unknown>)[String(error.code)], undefined);

    // "0 means already expired": the call fails at once, nothing sent, safe to retry
    const expired = await client.stat({ path: '/' }, { timeoutMs: 0 }).then(
      () => assert.fail('expected DEADLINE_EXCEEDED'),
      (e: unknown) => e,
    );
    assert.ok(expired instanceof RpcError);
    assert.equal(expired.code, Status.DEADLINE_EXCEEDED);
    assert.equal(expired.retrySafe, true);

    assert.deepEqual([...(await client.raw(new Uint8Array([1, 2, 3])))], [1, 2, 3]);
    assert.equal(logged.at(-1), 'files.v1/raw unary');
    const rtt = await session.ping();
    assert.ok(Number.isFinite(rtt) && rtt >= 0);
    // what the README lists beside ping()
    assert.equal(session.rttMs, rtt);
    assert.equal(session.role, 'dialer');
    assert.equal(session.streamCount, 0);
    assert.equal(session.goawayReason, undefined);
    assert.equal(session.peer.transport, 'tcp');
  } finally {
    await session.close();
    await server.close();
  }
});

void test('the README streams example works as written', { timeout: 10_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gridwire-readme-'));
  const Store = defineService('store.v1', {
    watch: serverStream<{ prefix: string }, { key: string }>(),
    total: clientStream<number, number>(),
    chat: bidi<string, string>(),
    put: upload<{ name: string }, { bytes: number }>(),
    get: download<{ name: string }>(),
  });
  const store = serve(Store, {
    async *watch({ prefix }, ctx) {
      while (!ctx.draining.aborted) yield { key: `${prefix}/a` };
    },
    async total(numbers) {
      let t = 0;
      for await (const n of numbers) t += n;
      return t;
    },
    async *chat(lines) {
      for await (const line of lines) yield line.toUpperCase();
    },
    async put({ name }, body) {
      await pipeline(body, fs.createWriteStream(join(dir, name)));
      return { bytes: fs.statSync(join(dir, name)).size };
    },
    get: ({ name }) => fs.createReadStream(join(dir, name)),
  });
  const server = await listen('tcp://127.0.0.1:0', { services: [store] });
  const session = await connect(server.url);
  try {
    const c = session.client(Store);
    const keys: string[] = [];
    for await (const { key } of c.watch({ prefix: 'x' }, { timeoutMs: 5000 })) {
      keys.push(key);
      if (keys.length === 3) break;
    }
    assert.deepEqual(keys, ['x/a', 'x/a', 'x/a']);
    assert.equal(await c.total([1, 2, 3]), 6);
    const chat = c.chat();
    await chat.send('hi');
    chat.end();
    const lines: string[] = [];
    for await (const line of chat) lines.push(line);
    assert.deepEqual(lines, ['HI']);
    const driven: string[] = [];
    for await (const line of c.chat(['a', 'b'])) driven.push(line);
    assert.deepEqual(driven, ['A', 'B']);
    const source = join(dir, 'source');
    fs.writeFileSync(source, Buffer.alloc(300_000, 7));
    assert.deepEqual(await c.put({ name: 'f' }, fs.createReadStream(source)), { bytes: 300_000 });
    await pipeline(c.get({ name: 'f' }), fs.createWriteStream(join(dir, 'copy')));
    assert.deepEqual(fs.readFileSync(join(dir, 'copy')), fs.readFileSync(source));

    // the endless watch ends cleanly once the server begins a graceful close, long before its grace runs out
    const watching = c.watch({ prefix: 'y' })[Symbol.asyncIterator]();
    assert.deepEqual((await watching.next()).value, { key: 'y/a' });
    const started = performance.now();
    const closing = server.close({ graceMs: 10_000 });
    while (!(await watching.next()).done);
    await closing;
    assert.ok(performance.now() - started < 5000, 'server.close() did not wait for the grace');
  } finally {
    session.destroy();
    await server.close({ graceMs: 100 });
    await rm(dir, { recursive: true, force: true });
  }
});

void test('the README channel and mesh example works as written (unix sockets instead of hosts)', { timeout: 15_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-readme-mesh-'));
  const url = (name: string): string => `unix://${join(dir, `${name}.sock`)}`;
  const Files = defineService('files.v1', { stat: unary<{ path: string }, { size: number }>() });
  const files = serve(Files, { stat: () => ({ size: 42 }) });
  const states: string[] = [];
  const log = (...args: unknown[]): void => void states.push(args.join(' '));
  const quiet = (): void => undefined;
  const server = await listen(url('server'), { services: [files], log: quiet });
  const others = ['n2', 'n3', 'n4'].map(
    (name) => new Mesh({ name, listen: url(name), peers: { n1: url('n1') }, services: [files], dataLane: true, log: quiet }),
  );
  await Promise.all(others.map((m) => m.start()));
  try {
    const ch = channel(url('server'), { services: [], reconnect: { initialDelayMs: 500, maxDelayMs: 30_000 }, log: quiet });
    ch.on('state', ({ state, error, delayMs }) => log(state, error?.message, delayMs));
    assert.deepEqual(await ch.client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5000 }), { size: 42 });
    assert.deepEqual(await ch.client(Files).stat({ path: '/' }), { size: 42 }, 'fail-fast succeeds once connected');
    assert.ok(states.includes('ready  '), `the channel reported ready: ${JSON.stringify(states)}`);
    await ch.close();

    const mesh = new Mesh({
      name: 'n1',
      listen: url('n1'),
      peers: { n2: url('n2'), n3: url('n3'), agent7: null },
      services: [files],
      dataLane: true,
      connectionsPerPeer: 1,
      log: quiet,
    });
    await mesh.start();
    const n2 = mesh.peer('n2');
    n2.on('state', ({ state, lane }) => log('n2', lane, state));
    assert.deepEqual(await n2.client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5000 }), { size: 42 });
    mesh.addPeer('n4', url('n4'));
    assert.deepEqual(await mesh.peer('n4').client(Files).stat({ path: '/' }, { waitForReady: true, timeoutMs: 5000 }), { size: 42 });
    await mesh.removePeer('n3');
    assert.throws(() => mesh.peer('n3'), /no peer named "n3"/);
    assert.ok(states.some((line) => line.startsWith('n2 control ready')), `n2's state events: ${JSON.stringify(states)}`);
    await n2.sessions.get('control')!.values().next().value!.ping();
    assert.equal(typeof n2.rttMs, 'number', 'the peer exposes the RTT of its control connection');
    await mesh.stop();
    assert.equal(n2.state, 'closed');
  } finally {
    await Promise.all(others.map((m) => m.stop({ graceMs: 100 })));
    await server.close({ graceMs: 100 });
    await rm(dir, { recursive: true, force: true });
  }
});
