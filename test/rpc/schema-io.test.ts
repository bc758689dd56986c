/**
 * A validated method hands its handler the input schema's *output* (defaults filled in, transforms applied) and its
 * caller the output schema's output, while the caller sends, and the handler returns, the schemas' input types: the
 * runtime half of what test/rpc/schema-types.check.ts proves for the types.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientStream, defineService, serve, serverStream, Status, unary } from '../../src/index.js';
import { labelled, limitWithDefault, numberFromString } from '../fixtures/transforming-schemas.js';
import { openConn, rejectsWithStatus } from '../helpers.js';

const Search = defineService('schema.io.v1', {
  find: unary({ input: limitWithDefault, output: labelled }),
  parse: unary({ input: numberFromString }),
  tail: serverStream({ input: limitWithDefault, output: labelled }),
  sum: clientStream({ input: numberFromString, output: labelled }),
});

void test('the handler receives what the input schema made of the request (a default, a transform); the caller what the output schema made of the response', async (t) => {
  const seen: unknown[] = [];
  const impl = serve(Search, {
    find(request) {
      seen.push(request);
      return request.limit * 2;
    },
    parse(n) {
      seen.push(n);
      return typeof n;
    },
    async *tail({ limit }) {
      for (let i = 0; i < limit; i++) yield i;
    },
    async sum(numbers) {
      let total = 0;
      for await (const n of numbers) {
        seen.push(n);
        total += n;
      }
      return total;
    },
  });
  const { caller } = await openConn(t, 'memory', false, { services: [impl] });
  const client = caller.client(Search);

  assert.deepStrictEqual(await client.find({}), { n: 20, label: '#20' }, 'the default reached the handler; the output schema shaped the reply');
  assert.deepStrictEqual(seen.shift(), { limit: 10 });
  assert.deepStrictEqual(await client.find({ limit: 3 }), { n: 6, label: '#6' });
  assert.deepStrictEqual(seen.shift(), { limit: 3 });

  assert.equal(await client.parse('42'), 'number', 'the handler got the transformed value');
  assert.equal(seen.shift(), 42);
  await rejectsWithStatus(client.parse('4x2'), Status.INVALID_ARGUMENT, 'a request the input schema refuses');

  const tailed: unknown[] = [];
  for await (const item of client.tail({ limit: 2 })) tailed.push(item);
  assert.deepStrictEqual(tailed, [{ n: 0, label: '#0' }, { n: 1, label: '#1' }]);

  assert.deepStrictEqual(await client.sum(['1', '2', '39']), { n: 42, label: '#42' });
  assert.deepStrictEqual(seen.splice(0), [1, 2, 39], 'each streamed request was transformed');
});
