/**
 * Status semantics of unary calls: what the caller sees for unknown methods, handler failures, schema validation,
 * size limits and bad metadata. Every failure here is a stream failure: the connection must stay usable, which
 * each test checks with a following call.
 */
import assert from 'node:assert/strict';
import { describe } from 'node:test';

import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defineService, RpcError, serve, Status, unary, type RpcSession } from '../../src/index.js';
import { rejectsWithStatus, testConnTypes, type ConnTestOptions } from '../helpers.js';

// ---------------------------------------------------------------- a hand-made Standard Schema

interface Issue {
  message: string;
  path?: string[];
}

/** A Standard Schema v1 validator from a check function: `check` returns the (possibly transformed) value or issues. */
function schema<T>(check: (value: unknown) => { value: T } | { issues: Issue[] }, options: { async?: boolean } = {}): StandardSchemaV1<unknown, T> {
  const validate = (value: unknown): StandardSchemaV1.Result<T> | Promise<StandardSchemaV1.Result<T>> => {
    const result = check(value);
    return options.async ? new Promise((resolve) => setTimeout(() => resolve(result), 5)) : result;
  };
  return { '~standard': { version: 1, vendor: 'test', validate } };
}

interface User {
  name: string;
  age: number;
}

const isUser = (value: unknown): { value: User } | { issues: Issue[] } => {
  const v = value as Partial<User> | null;
  const issues: Issue[] = [];
  if (typeof v !== 'object' || v === null) return { issues: [{ message: 'expected an object' }] };
  if (typeof v.name !== 'string') issues.push({ message: 'must be a string', path: ['name'] });
  if (typeof v.age !== 'number' || v.age < 0) issues.push({ message: 'must be a non-negative number', path: ['age'] });
  // a transforming validator: the handler must see the validated value, not the raw one
  return issues.length > 0 ? { issues } : { value: { name: v.name!.trim(), age: v.age! } };
};

const UserSchema = schema(isUser);
const AsyncUserSchema = schema(isUser, { async: true });
const Throwing = schema<unknown>(() => {
  throw new Error('the validator itself is broken');
});

// ---------------------------------------------------------------- services

const Checked = defineService('test.Checked', {
  create: unary({ input: UserSchema, output: UserSchema }),
  createAsync: unary({ input: AsyncUserSchema, output: AsyncUserSchema }),
  /** The handler returns whatever it is told to, which the output schema may refuse. */
  badOutput: unary({ input: schema((v) => ({ value: v })), output: UserSchema }),
  badOutputAsync: unary({ input: schema((v) => ({ value: v })), output: AsyncUserSchema }),
  inputThrows: unary({ input: Throwing, output: Throwing }),
  outputThrows: unary({ input: schema((v) => ({ value: v })), output: Throwing }),
});

const Basic = defineService('test.Status', {
  ok: unary<unknown, unknown>(),
  throwError: unary<string, never>(),
  rejectWith: unary<'string' | 'object' | 'number' | 'undefined' | 'domlike', never>(),
  big: unary<number, string>(),
  badTrailer: unary<null, string>(),
});

/** The caller's view of test.Status: one method more than the server implements. */
const StatusClientView = defineService('test.Status', {
  ok: unary<unknown, unknown>(),
  notThere: unary<null, null>(),
});

const Missing = defineService('test.Missing', { anything: unary<null, null>() });

function services(calls: { count: number }): ReturnType<typeof serve>[] {
  const count = <T>(value: T): T => {
    calls.count++;
    return value;
  };
  return [
    serve(Checked, {
      create: (user) => count(user),
      createAsync: (user) => count(user),
      badOutput: (value) => count(value as User),
      badOutputAsync: (value) => count(value as User),
      inputThrows: (value) => count(value),
      outputThrows: (value) => count(value),
    }),
    serve(Basic, {
      ok: (value) => value,
      throwError: (message) => {
        const error = new Error(message);
        error.stack = `Error: ${message}\n    at handler (/srv/secret/app/handlers.ts:12:7)`;
        throw error;
      },
      rejectWith: (kind) => {
        switch (kind) {
          case 'string':
            return Promise.reject('plain string rejection');
          case 'object':
            return Promise.reject({ secret: '/srv/secret/path', code: 42 });
          case 'number':
            throw 42;
          case 'undefined':
            return Promise.reject(undefined);
          case 'domlike':
            return Promise.reject({ name: 'CustomError', message: 'dom-like message' });
        }
      },
      big: (n) => 'y'.repeat(n),
      badTrailer: (_req, ctx) => {
        ctx.trailer['Not Valid'] = 'x';
        return 'ok';
      },
    }),
  ];
}

async function assertUsable(caller: RpcSession): Promise<void> {
  assert.deepEqual(await caller.client(Basic).ok({ still: 'up' }), { still: 'up' });
}

const opts: ConnTestOptions = { timeout: 10_000 };

void describe('status: unknown service and method', () => {
  testConnTypes(
    'T-S1 T-Z5 an unknown service is UNIMPLEMENTED',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const error = await rejectsWithStatus(caller.client(Missing).anything(null), Status.UNIMPLEMENTED);
      assert.match(error.message, /test\.Missing\/anything/);
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'T-S1 T-Z5 an unknown method of a known service is UNIMPLEMENTED',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const error = await rejectsWithStatus(caller.client(StatusClientView).notThere(null), Status.UNIMPLEMENTED);
      assert.match(error.message, /test\.Status\/notThere/);
      await assertUsable(caller);
    },
    opts,
  );
});

void describe('status: handler failures', () => {
  testConnTypes(
    'T-S4 a plain Error is UNKNOWN with exactly its message, no stack trace or path',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const error = await rejectsWithStatus(caller.client(Basic).throwError('disk is on fire'), Status.UNKNOWN);
      assert.equal(error.rawMessage, 'disk is on fire');
      assert.equal(error.message, 'UNKNOWN: disk is on fire');
      assert.doesNotMatch(error.rawMessage, /\bat\b|handlers\.ts|\/srv\/|\n/);
      assert.deepEqual({ ...error.metadata }, {});
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'T-S4 a rejection with a non-Error is UNKNOWN',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const client = caller.client(Basic);
      const text = await rejectsWithStatus(client.rejectWith('string'), Status.UNKNOWN, 'string');
      assert.equal(text.rawMessage, 'plain string rejection');
      const object = await rejectsWithStatus(client.rejectWith('object'), Status.UNKNOWN, 'object');
      assert.doesNotMatch(object.rawMessage, /secret|\[object Object\]/, 'an object is not serialised to the peer');
      await rejectsWithStatus(client.rejectWith('number'), Status.UNKNOWN, 'thrown number');
      await rejectsWithStatus(client.rejectWith('undefined'), Status.UNKNOWN, 'undefined');
      const domlike = await rejectsWithStatus(client.rejectWith('domlike'), Status.UNKNOWN, 'error-like object');
      assert.equal(domlike.rawMessage, 'dom-like message');
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'T-S4 invalid trailer metadata set by a handler is INTERNAL',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const error = await rejectsWithStatus(caller.client(Basic).badTrailer(null), Status.INTERNAL);
      assert.match(error.message, /trailer metadata/);
      await assertUsable(caller);
    },
    opts,
  );
});

void describe('status: Standard Schema validation', () => {
  testConnTypes(
    'T-S4 an input validator refusing the request is INVALID_ARGUMENT, before the handler runs',
    async (env) => {
      const calls = { count: 0 };
      const { caller } = await env.open({ services: services(calls) });
      const client = caller.client(Checked);
      for (const create of [client.create, client.createAsync]) {
        const error = await rejectsWithStatus(create({ name: 7, age: -1 } as unknown as User), Status.INVALID_ARGUMENT);
        assert.match(error.rawMessage, /name: must be a string/);
        assert.match(error.rawMessage, /age: must be a non-negative number/);
        await rejectsWithStatus(create(null as unknown as User), Status.INVALID_ARGUMENT, 'null request');
      }
      assert.equal(calls.count, 0, 'the handler never ran');
      // a valid request runs the handler with the validator's output (trimmed), and passes the output validator
      assert.deepEqual(await client.create({ name: '  ada ', age: 36 }), { name: 'ada', age: 36 });
      assert.deepEqual(await client.createAsync({ name: ' bob', age: 1 }), { name: 'bob', age: 1 });
      assert.equal(calls.count, 2);
    },
    opts,
  );

  testConnTypes(
    'T-S4 an output validator refusing the response is INTERNAL on the client',
    async (env) => {
      const calls = { count: 0 };
      const { caller } = await env.open({ services: services(calls) });
      const client = caller.client(Checked);
      const bad = { name: 'x', age: 'old' } as unknown as User;
      const error = await rejectsWithStatus(client.badOutput(bad), Status.INTERNAL);
      assert.match(error.rawMessage, /invalid response: age: must be a non-negative number/);
      await rejectsWithStatus(client.badOutputAsync(bad), Status.INTERNAL, 'async output validator');
      assert.equal(calls.count, 2, 'the handler ran: the response is what failed');
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'a validator that throws fails only its call (INTERNAL), not the connection',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const client = caller.client(Checked);
      const before = caller.client(Basic).ok('concurrent');
      await rejectsWithStatus(client.inputThrows('x'), Status.INTERNAL, 'input validator throws');
      await rejectsWithStatus(client.outputThrows('x'), Status.INTERNAL, 'output validator throws');
      assert.equal(await before, 'concurrent');
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'an onTrailer callback that throws fails only its call, not the connection',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const call = caller.client(Basic).ok(1, {
        onTrailer: () => {
          throw new Error('callback bug');
        },
      });
      const error = await rejectsWithStatus(call, Status.INTERNAL, 'onTrailer throws');
      assert.match(error.message, /callback bug/);
      await assertUsable(caller);
    },
    opts,
  );
});

void describe('status: limits', () => {
  testConnTypes(
    "T-S4 a request larger than the peer's maxMessageBytes is RESOURCE_EXHAUSTED; the connection stays",
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }), callee: { maxMessageBytes: 1024 } });
      const client = caller.client(Basic);
      const error = await rejectsWithStatus(client.ok('x'.repeat(4096)), Status.RESOURCE_EXHAUSTED);
      assert.match(error.rawMessage, /1024/);
      assert.equal(error.retrySafe, true, 'nothing was sent');
      assert.equal(await client.ok('x'.repeat(900)), 'x'.repeat(900));
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    "T-S4 a response larger than the caller's maxMessageBytes is RESOURCE_EXHAUSTED; the connection stays",
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }), caller: { maxMessageBytes: 2048 } });
      const client = caller.client(Basic);
      await rejectsWithStatus(client.big(100_000), Status.RESOURCE_EXHAUSTED);
      assert.equal((await client.big(100)).length, 100);
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'T-S4 metadata over the limit is RESOURCE_EXHAUSTED (our limit before sending, the peer limit on receipt)',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }), callee: { maxMetadataBytes: 256, maxMetadataEntries: 4 } });
      const client = caller.client(Basic);
      // over the caller's own default limit (8 KiB): refused before sending
      const local = await rejectsWithStatus(client.ok(1, { metadata: { 'x-big': 'v'.repeat(9000) } }), Status.RESOURCE_EXHAUSTED, 'own limit');
      assert.equal(local.retrySafe, true);
      // within ours, over the callee's 256 bytes: the callee resets the stream
      await rejectsWithStatus(client.ok(1, { metadata: { 'x-medium': 'v'.repeat(1000) } }), Status.RESOURCE_EXHAUSTED, 'peer byte limit');
      const many = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, 'v']));
      await rejectsWithStatus(client.ok(1, { metadata: many }), Status.RESOURCE_EXHAUSTED, 'peer entry limit');
      assert.equal(await client.ok(2, { metadata: { 'x-small': 'fits' } }), 2);
      await assertUsable(caller);
    },
    opts,
  );

  testConnTypes(
    'an invalid metadata key rejects the call with an error that names the key',
    async (env) => {
      const { caller } = await env.open({ services: services({ count: 0 }) });
      const client = caller.client(Basic);
      for (const key of ['Upper-Case', 'with space', '', '-leading-dash', 'k'.repeat(65), 'ünï']) {
        let call: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          call = client.ok(1, { metadata: { [key]: 'v' } });
        }, `key ${JSON.stringify(key)} must reject, not throw`);
        await assert.rejects(call!, (error: unknown) => {
          assert.ok(error instanceof RpcError, `an RpcError for key ${JSON.stringify(key)}`);
          assert.ok(error.message.includes(`metadata key ${JSON.stringify(key)} is invalid`), error.message);
          assert.equal(error.retrySafe, true, 'nothing was sent');
          return true;
        });
      }
      const badValue = client.ok(1, { metadata: { 'x-number': 5 as unknown as string } });
      await assert.rejects(badValue, (error: unknown) => error instanceof RpcError && /x-number/.test(error.message));
      await assertUsable(caller);
    },
    opts,
  );
});
