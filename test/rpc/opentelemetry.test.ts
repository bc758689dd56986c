/**
 * The tracing interceptors (`gridwire/opentelemetry`) against the OpenTelemetry SDK: a CLIENT span here and the SERVER
 * span of a child process are one trace, the server's the child of the client's (the W3C context travels in the
 * call's metadata); in process, a failed call sets both spans' status, a stream's spans end when it ends, and a caller
 * inside an active span gets a client span that is its child.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test, type TestContext } from 'node:test';

import { AsyncLocalStorage } from 'node:async_hooks';

import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { connect, defineService, RpcError, serve, serverStream, Status, unary, upload } from '../../src/index.js';
import { STATUS_CODE_ATTRIBUTE, traceClientCalls, traceServerCalls } from '../../src/observe/opentelemetry.js';
import { memoryRpcPair } from '../fixtures/connections.js';
import { rejectsWithStatus, until } from '../helpers.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

/**
 * The smallest context manager over AsyncLocalStorage (what @opentelemetry/context-async-hooks provides, which is not
 * installed here): enough for `context.with` to reach the interceptor through the client's method call.
 */
class StorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

before(() => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new StorageContextManager());
});
after(async () => {
  propagation.disable();
  context.disable();
  await provider.shutdown();
});

const Svc = defineService('test.otel.v1', {
  hello: unary<string, string>(),
  count: serverStream<number, number>(),
  put: upload<string, number>(),
});

async function tracedPair(t: TestContext) {
  exporter.reset();
  const { caller } = await memoryRpcPair(
    t,
    { clientInterceptors: [traceClientCalls({ tracerProvider: provider })] },
    {
      serverInterceptors: [traceServerCalls({ tracerProvider: provider })],
      services: [
        serve(Svc, {
          hello: (name) => {
            if (name === 'fail') throw new RpcError(Status.NOT_FOUND, 'no one called fail');
            return `hello ${name}`;
          },
          count: async function* (n) {
            for (let i = 0; i < n; i++) yield i;
          },
          put: async (_name, body) => {
            let bytes = 0;
            for await (const chunk of body) bytes += chunk.byteLength;
            return bytes;
          },
        }),
      ],
    },
  );
  return caller.client(Svc);
}

type Report = Record<string, unknown> & { event: string };

/** test/fixtures/otel-server.ts as a child process, its JSON-line reports collected; SIGKILLed after the test. */
function startOtelServer(t: TestContext) {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/otel-server.ts', import.meta.url))], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => {
    child.stdin.destroy();
    child.kill('SIGKILL');
  });
  const reports: Report[] = [];
  let stderr = '';
  let buffered = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    buffered += s;
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      reports.push(JSON.parse(buffered.slice(0, newline)) as Report);
      buffered = buffered.slice(newline + 1);
    }
  });
  const waitFor = async (match: (r: Report) => boolean, ms: number, what: string): Promise<Report> => {
    await until(() => reports.some(match) || child.exitCode !== null, ms, `${what} (stderr: ${stderr})`).catch((error: Error) => {
      throw new Error(`${error.message}; stderr: ${stderr}`);
    });
    const found = reports.find(match);
    assert.ok(found, `${what}: the child exited (${child.exitCode}): ${stderr}`);
    return found;
  };
  return { waitFor };
}

const spansNamed = (name: string) => exporter.getFinishedSpans().filter((s) => s.name === name);

void describe('OpenTelemetry tracing', () => {
  void test('spans link across two processes: the server span (in a child process) is the child of the client span, same trace', async (t) => {
    // the child process serves with traceServerCalls and prints each span it finishes as JSON on stdout
    const child = startOtelServer(t);
    const listening = await child.waitFor((e) => e.event === 'listening', 15_000, 'the child listening');
    exporter.reset();
    const session = await connect(String(listening.url), { clientInterceptors: [traceClientCalls({ tracerProvider: provider })], log: () => {} });
    t.after(() => session.close({ graceMs: 0 }));
    assert.equal(await session.client(Svc).hello('otel'), 'hello otel');
    const serverSpan = await child.waitFor((e) => e.event === 'span' && e.name === 'test.otel.v1/hello', 5000, 'the server span');
    const [clientSpan] = spansNamed('test.otel.v1/hello');
    assert.ok(clientSpan, 'the client span');
    assert.equal(clientSpan.kind, SpanKind.CLIENT);
    assert.equal(serverSpan.kind, SpanKind.SERVER);
    assert.equal(serverSpan.traceId, clientSpan.spanContext().traceId, 'one trace');
    assert.equal(serverSpan.parentSpanId, clientSpan.spanContext().spanId, "the server span's parent is the client span");
    for (const attributes of [clientSpan.attributes, serverSpan.attributes as Record<string, unknown>]) {
      assert.equal(attributes['rpc.system'], 'gridwire');
      assert.equal(attributes['rpc.service'], 'test.otel.v1');
      assert.equal(attributes['rpc.method'], 'hello');
      assert.equal(attributes[STATUS_CODE_ATTRIBUTE], 0);
    }
    // an error crosses too: both spans ERROR, the status code recorded
    await rejectsWithStatus(session.client(Svc).hello('fail'), Status.NOT_FOUND, 'fail');
    const failedServer = await child.waitFor((e) => e.event === 'span' && (e.attributes as Record<string, unknown>)[STATUS_CODE_ATTRIBUTE] === Status.NOT_FOUND, 5000, 'the failed server span');
    assert.equal((failedServer.status as { code: number }).code, SpanStatusCode.ERROR);
  });

  void test('a failed call sets both spans to ERROR with the status name; an OK call leaves them UNSET', async (t) => {
    const client = await tracedPair(t);
    await client.hello('ok');
    await rejectsWithStatus(client.hello('fail'), Status.NOT_FOUND, 'fail');
    await until(() => spansNamed('test.otel.v1/hello').length === 4, 2000, 'four spans');
    const spans = spansNamed('test.otel.v1/hello');
    const failed = spans.filter((s) => s.status.code === SpanStatusCode.ERROR);
    assert.equal(failed.length, 2);
    for (const span of failed) {
      assert.match(span.status.message ?? '', /^NOT_FOUND: no one called fail/);
      assert.equal(span.attributes[STATUS_CODE_ATTRIBUTE], Status.NOT_FOUND);
    }
    assert.deepEqual(spans.filter((s) => s.status.code === SpanStatusCode.UNSET).map((s) => s.kind).sort(), [SpanKind.CLIENT, SpanKind.SERVER].sort());
    const client2 = failed.find((s) => s.kind === SpanKind.CLIENT)!;
    const server2 = failed.find((s) => s.kind === SpanKind.SERVER)!;
    assert.equal(server2.parentSpanContext?.spanId, client2.spanContext().spanId);
  });

  void test('a stream ends its spans when it ends, not when it starts; an upload too; a caller inside a span is the parent', async (t) => {
    const client = await tracedPair(t);
    const stream = client.count(3);
    const seen: number[] = [];
    for await (const n of stream) {
      seen.push(n);
      if (n === 0) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(spansNamed('test.otel.v1/count').filter((s) => s.kind === SpanKind.CLIENT).length, 0, 'the client span is open while the stream runs');
      }
    }
    assert.deepEqual(seen, [0, 1, 2]);
    await until(() => spansNamed('test.otel.v1/count').length === 2, 2000, 'both stream spans ended');
    const outer = provider.getTracer('test').startSpan('outer');
    const bytes = await context.with(trace.setSpan(context.active(), outer), () => client.put('f', [new Uint8Array(10), new Uint8Array(5)]));
    outer.end();
    assert.equal(bytes, 15);
    await until(() => spansNamed('test.otel.v1/put').length === 2, 2000, 'both upload spans');
    const putClient = spansNamed('test.otel.v1/put').find((s) => s.kind === SpanKind.CLIENT)!;
    assert.equal(putClient.parentSpanContext?.spanId, outer.spanContext().spanId, 'the active span is the client span\'s parent');
    assert.equal(putClient.spanContext().traceId, outer.spanContext().traceId);
  });
});

void test("import 'gridwire' never reaches @opentelemetry/api: only gridwire/opentelemetry imports it", () => {
  const seen = new Set<string>();
  const peers: string[] = [];
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, spec] of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/g)) {
      if (spec!.startsWith('.')) walk(resolve(dirname(file), spec!.replace(/\.js$/, '.ts')));
      else if (spec!.startsWith('@opentelemetry/')) peers.push(`${file}: ${spec}`);
    }
  };
  walk(fileURLToPath(new URL('../../src/index.ts', import.meta.url)));
  assert.ok(seen.size > 50, `walked ${seen.size} modules`);
  assert.deepEqual(peers, []);
  const entry = fileURLToPath(new URL('../../src/observe/opentelemetry.ts', import.meta.url));
  seen.clear();
  walk(entry);
  assert.ok(peers.length > 0, 'the walk does find the import from gridwire/opentelemetry');
});
