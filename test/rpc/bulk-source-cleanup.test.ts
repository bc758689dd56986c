/**
 * A byte source handed to gridwire belongs to it: when the call ends before the source is pumped, gridwire closes it
 * (a Node Readable is destroyed, so an open file does not wait for GC to release its descriptor).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { defineService, download, serve, upload } from '../../src/index.js';
import { Status } from '../../src/wire/constants.js';
import { deferred, rejectsWithStatus, testConnTypes, until } from '../helpers.js';

const Files = defineService('cleanup.v1', {
  get: download<{ name: string }>(),
  put: upload<{ name: string }, number>(),
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
