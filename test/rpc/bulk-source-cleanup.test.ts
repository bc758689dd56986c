/**
 * A source handed to gridwire belongs to it (an upload's body, the requests of a clientStream or bidi call): when the
 * call ends before the source is pumped, gridwire closes it (a Node Readable is destroyed, so an open file does not
 * wait for GC to release its descriptor; a web ReadableStream is cancelled; a generator is returned).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { bidi, clientStream, defineService, download, serve, upload, type Client } from '../../src/index.js';
import { Status } from '../../src/wire/constants.js';
import { openChannel, unixUrl } from '../fixtures/connections.js';
import { deferred, errorOf, rejectsWithStatus, testConnTypes, until } from '../helpers.js';

const Files = defineService('cleanup.v1', {
  get: download<{ name: string }>(),
  put: upload<{ name: string }, number>(),
});

const Requests = defineService('cleanup.requests.v1', {
  sum: clientStream<number, number>(),
  chat: bidi<string, string>(),
});

function trackedReadable(): Readable {
  return new Readable({ read() { /* never produces: only its closing matters */ } });
}

testConnTypes('a download handler that returns its source after the deadline has the source destroyed', async (env) => {
  const returned = deferred<Readable>();
  const handler = serve(Files, {
    async get(_request, ctx) {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      const source = trackedReadable(); // opened late, as a handler that ignores its signal would
      returned.resolve(source);
      return source;
    },
    put: () => 0,
  });
  const { caller } = await env.open({ services: [handler] });
  const body = caller.client(Files).get({ name: 'f' }, { timeoutMs: 50 });
  await rejectsWithStatus((async () => { for await (const _ of body) void _; })(), Status.DEADLINE_EXCEEDED, 'download');
  const source = await returned.promise;
  await until(() => source.destroyed, 1000, 'the late source to be destroyed');
});

testConnTypes('an upload that cannot start has its body destroyed', async (env) => {
  const { caller } = await env.open({ services: [serve(Files, { get: () => new Uint8Array(0), put: () => 0 })] });
  await caller.close({ graceMs: 0 });
  const body = trackedReadable();
  await rejectsWithStatus(caller.client(Files).put({ name: 'f' }, body), Status.UNAVAILABLE, 'upload');
  assert.ok(body.destroyed, 'the body the caller handed over is destroyed');
});

testConnTypes('an upload that cannot start has its web ReadableStream body cancelled', async (env) => {
  const { caller } = await env.open({ services: [serve(Files, { get: () => new Uint8Array(0), put: () => 0 })] });
  await caller.close({ graceMs: 0 });
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    cancel() {
      cancelled = true;
    },
  });
  await rejectsWithStatus(caller.client(Files).put({ name: 'f' }, body), Status.UNAVAILABLE, 'upload');
  await until(() => cancelled, 1000, 'the web stream cancelled');
});

/** Makes a clientStream and a bidi(iterable) call that cannot start; each source must be closed by the time it failed. */
async function assertRequestsClosed(client: Client<(typeof Requests)['methods']>, status: Status): Promise<void> {
  const requests = new Readable({ objectMode: true, read() {} });
  await rejectsWithStatus(client.sum(requests), status, 'clientStream');
  assert.ok(requests.destroyed, 'the clientStream requests are destroyed');
  const chatRequests = new Readable({ objectMode: true, read() {} });
  const error = await errorOf(async () => {
    for await (const _ of client.chat(chatRequests)) void _;
  });
  assert.equal((error as { code?: Status }).code, status, String(error));
  assert.ok(chatRequests.destroyed, 'the bidi requests are destroyed');
  const generator = (async function* () {
    yield 'never sent';
  })();
  await errorOf(async () => {
    for await (const _ of client.chat(generator)) void _;
  });
  assert.equal((await generator.next()).done, true, 'a generator of requests is returned');
}

testConnTypes('the requests of a clientStream or bidi(iterable) call on a closed session are closed (they stayed open)', async (env) => {
  const { caller } = await env.open({ services: [serve(Requests, { sum: () => 0, chat: async function* () {} })] });
  await caller.close({ graceMs: 0 });
  await assertRequestsClosed(caller.client(Requests), Status.UNAVAILABLE);
}, { kinds: ['memory'] });

void test('the requests of a clientStream or bidi(iterable) call a channel without a connection fails are closed (they stayed open)', async (t) => {
  const ch = openChannel(t, unixUrl(t)); // nothing listens there
  await until(() => ch.state === 'backoff', 2000, 'the channel in backoff');
  await assertRequestsClosed(ch.client(Requests), Status.UNAVAILABLE);
});
