/**
 * The README's one-screen example, run as a test (as connect-es runs its README): if the example stops working,
 * this fails. Kept in step with README.md by hand; the listen address is port 0 instead of 7000.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, defineService, listen, RpcError, serve, Status, unary } from '../src/index.js';

void test('the README example works as written', { timeout: 10_000 }, async () => {
  const Files = defineService('files.v1', {
    stat: unary<{ path: string }, { size: number }>(),
    raw: unary({ codec: 'raw' }),
  });

  const files = serve(Files, {
    async stat({ path }, ctx) {
      ctx.trailer['served-by'] = 'node-a';
      if (path === '') throw new RpcError(Status.INVALID_ARGUMENT, 'empty path');
      return { size: 42 };
    },
    raw: (bytes) => bytes,
  });

  const server = await listen('tcp://127.0.0.1:0', { services: [files] });
  const session = await connect(server.url, { services: [] });
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

    const error = await client.stat({ path: '' }).then(
      () => assert.fail('expected INVALID_ARGUMENT'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, Status.INVALID_ARGUMENT);
    assert.equal(error.rawMessage, 'empty path');

    assert.deepEqual([...(await client.raw(new Uint8Array([1, 2, 3])))], [1, 2, 3]);
    const rtt = await session.ping();
    assert.ok(Number.isFinite(rtt) && rtt >= 0);
  } finally {
    await session.close();
    await server.close();
  }
});
