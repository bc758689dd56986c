/**
 * What a serverStream or bidi handler may return besides an async generator, and the rules its responses are pulled
 * by (those of `for await`, which server/response-pump.ts follows without an async function): a hand-written async
 * iterator with or without `return()`, one whose `next()` answers with a thenable, throws, or resolves to something
 * that is not an object, and a send that fails, which closes the source first and still reports its own error.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import { defineService, RpcError, serve, serverStream, Status, statusName } from '../../src/index.js';
import { deferred, sleep, testConnTypes, within, type ConnTestOptions } from '../helpers.js';

const kinds: ConnTestOptions = { kinds: ['memory', 'tcp'], directions: ['forward'], timeout: 10_000 };

const Sources = defineService('test.Sources', {
  /** Returns whatever the test put in `source` (a hand-written async iterable). */
  items: serverStream<null, unknown>(),
});

function assertStatus(error: unknown, code: Status, what: string): asserts error is RpcError {
  assert.ok(error instanceof RpcError, `${what}: expected an RpcError, got ${String(error)}`);
  assert.equal(error.code, code, `${what}: expected ${statusName(code)}, got ${statusName(error.code)} (${error.message})`);
}

/** Reads a stream to its end or its error. */
async function read(stream: AsyncIterable<unknown>, what: string): Promise<{ items: unknown[]; error: unknown }> {
  const items: unknown[] = [];
  try {
    await within(
      (async () => {
        for await (const item of stream) items.push(item);
      })(),
      3000,
      what,
    );
  } catch (error) {
    return { items, error };
  }
  return { items, error: undefined };
}

/** A hand-written async iterable over `next`, counting the calls to `return` when given one. */
function iterable(next: () => unknown, returnMethod?: () => unknown): AsyncIterable<unknown> {
  return { [Symbol.asyncIterator]: () => (returnMethod === undefined ? { next } : { next, return: returnMethod }) } as AsyncIterable<unknown>;
}

void describe('response sources: what a streaming handler may return', () => {
  testConnTypes('a hand-written async iterator: without return(), with next() answering thenables, or resolving plain results', async (env) => {
    let source: AsyncIterable<unknown> = iterable(() => Promise.resolve({ done: true }));
    const { caller } = await env.open({ services: [serve(Sources, { items: () => source })] });
    const c = caller.client(Sources);

    let i = 0;
    source = iterable(() => Promise.resolve(i < 3 ? { done: false, value: i++ } : { done: true, value: 'ignored' }));
    assert.deepEqual(await read(c.items(null), 'no return()'), { items: [0, 1, 2], error: undefined });

    let j = 0;
    // a thenable that is not a Promise, and a plain (not promised) result: both are awaited as `for await` would
    source = iterable(() => {
      const result = j < 2 ? { done: false, value: `t${j++}` } : { done: true };
      return j % 2 === 0 ? { then: (resolve: (r: unknown) => void) => setImmediate(() => resolve(result)) } : result;
    });
    assert.deepEqual(await read(c.items(null), 'thenables'), { items: ['t0', 't1'], error: undefined });
  }, kinds);

  testConnTypes('next() that throws, rejects or resolves to a non-object fails the call with its error; return() is not called', async (env) => {
    let source: AsyncIterable<unknown> = iterable(() => Promise.resolve({ done: true }));
    const { caller } = await env.open({ services: [serve(Sources, { items: () => source })] });
    const c = caller.client(Sources);
    let returns = 0;
    const countReturn = (): Promise<IteratorResult<unknown>> => {
      returns++;
      return Promise.resolve({ done: true, value: undefined });
    };

    let k = 0;
    source = iterable(() => {
      if (k++ === 0) return Promise.resolve({ done: false, value: 'first' });
      throw new RpcError(Status.ABORTED, 'next() threw');
    }, countReturn);
    const thrown = await read(c.items(null), 'next() throws');
    assert.deepEqual(thrown.items, ['first']);
    assertStatus(thrown.error, Status.ABORTED, 'next() throws');
    assert.match(thrown.error.message, /next\(\) threw/);

    source = iterable(() => Promise.reject(new RpcError(Status.UNAVAILABLE, 'next() rejected')), countReturn);
    assertStatus((await read(c.items(null), 'next() rejects')).error, Status.UNAVAILABLE, 'next() rejects');

    source = iterable(() => Promise.resolve(42), countReturn);
    const notObject = await read(c.items(null), 'a result that is not an object');
    assertStatus(notObject.error, Status.UNKNOWN, 'a result that is not an object'); // a TypeError, as any a handler throws
    assert.match(notObject.error.message, /not an object/);
    assert.equal(returns, 0, 'return() is not called when next() itself failed');
  }, kinds);

  testConnTypes('a response that cannot be sent closes the source first (return() is awaited), then fails the call with its own error', async (env) => {
    let source: AsyncIterable<unknown> = iterable(() => Promise.resolve({ done: true }));
    const limit = { maxMessageBytes: 64 * 1024 };
    const { caller } = await env.open({ caller: limit, callee: limit, services: [serve(Sources, { items: () => source })] });
    const c = caller.client(Sources);

    const returnCalled = deferred();
    const returnDone = deferred();
    let n = 0;
    source = iterable(
      () => Promise.resolve({ done: false, value: n++ === 0 ? 'small' : new Uint8Array(100 * 1024) }),
      async () => {
        returnCalled.resolve();
        await returnDone.promise;
        throw new Error('return() failed too'); // the send's error still wins
      },
    );
    let settled = false;
    const reading = read(c.items(null), 'an oversized response').finally(() => (settled = true));
    await within(returnCalled.promise, 2000, 'return() called');
    await sleep(30);
    assert.equal(settled, false, 'the caller is not answered before return() has settled');
    returnDone.resolve();
    const { items, error } = await reading;
    assert.deepEqual(items, ['small']);
    assertStatus(error, Status.RESOURCE_EXHAUSTED, 'a response over the caller\'s maxMessageBytes');

    // a return() that throws at once, and one that is not a function: the send's error is reported all the same
    source = iterable(
      () => Promise.resolve({ done: false, value: new Uint8Array(100 * 1024) }),
      () => {
        throw new Error('return() threw');
      },
    );
    assertStatus((await read(c.items(null), 'return() throws')).error, Status.RESOURCE_EXHAUSTED, 'return() throws');
    source = { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: false, value: new Uint8Array(100 * 1024) }), return: 5 }) } as unknown as AsyncIterable<unknown>;
    assertStatus((await read(c.items(null), 'return is not callable')).error, Status.RESOURCE_EXHAUSTED, 'return is not callable');
  }, kinds);
});
