/**
 * gridwire/prometheus: what registry.metrics() prints parses as the Prometheus text exposition format (0.0.4, checked
 * line by line by the strict parser below: HELP and TYPE once per metric and before its samples, a metric's samples
 * together, names, label syntax and escapes, values) and its values match the calls made; labels are only this side's
 * methods (a method the peer makes up is `unknown`); the main entry point never loads prom-client.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';

import { Registry } from 'prom-client';

import { connect, defineService, listen, Status, unary } from '../../src/index.js';
import { collectGridwireMetrics } from '../../src/observe/prometheus.js';
import { rejectsWithStatus, until } from '../helpers.js';
import { Probe, probeService } from '../fixtures/stats-service.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A strict parser of the text exposition format: throws, naming the line, at anything the format does not allow. */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a line feed');
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const finished = new Set<string>(); // metrics whose samples are over: another sample of theirs later is an error
  let current: string | undefined;
  const lines = text.slice(0, -1).split('\n');
  for (const [index, line] of lines.entries()) {
    const where = `line ${index + 1}: ${JSON.stringify(line)}`;
    if (line === '') continue;
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (match === null) continue; // any other comment
      const [, keyword, name, rest] = match as unknown as [string, string, string, string];
      assert.match(name, METRIC_NAME, where);
      if (keyword === 'HELP') {
        assert.ok(!helps.has(name), `${where}: a second HELP`);
        assert.ok(!/\\[^\\n]/.test(rest.replace(/\\\\/g, '')), `${where}: HELP escapes only \\\\ and \\n`);
        helps.add(name);
      } else {
        assert.ok(TYPES.has(rest), `${where}: unknown type`);
        assert.ok(!types.has(name), `${where}: a second TYPE`);
        assert.ok(!samples.some((s) => s.name === name), `${where}: TYPE after the metric's samples`);
        types.set(name, rest);
      }
      continue;
    }
    const sample = parseSample(line, where);
    if (sample.name !== current) {
      if (current !== undefined) finished.add(current);
      assert.ok(!finished.has(sample.name), `${where}: the samples of ${sample.name} are not together`);
      current = sample.name;
    }
    assert.ok(types.has(sample.name), `${where}: a sample without a TYPE`);
    samples.push(sample);
  }
  return { types, samples };
}

function parseSample(line: string, where: string): Sample {
  const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
  assert.ok(name !== undefined, `${where}: no metric name`);
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    while (line[at] !== '}') {
      const labelName = /^[^=]*/.exec(line.slice(at))![0];
      assert.match(labelName, LABEL_NAME, `${where}: label name`);
      assert.ok(!(labelName in labels), `${where}: label ${labelName} twice`);
      at += labelName.length;
      assert.equal(line.slice(at, at + 2), '="', `${where}: label ${labelName} needs ="`);
      at += 2;
      let value = '';
      for (;;) {
        const c = line[at++];
        assert.ok(c !== undefined, `${where}: unterminated label value`);
        if (c === '"') break;
        if (c === '\\') {
          const e = line[at++];
          assert.ok(e === '\\' || e === '"' || e === 'n', `${where}: bad escape \\${e}`);
          value += e === 'n' ? '\n' : e;
        } else value += c;
      }
      labels[labelName] = value;
      if (line[at] === ',') at++;
      else assert.equal(line[at], '}', `${where}: , or } after a label`);
    }
    at++;
  }
  const rest = line.slice(at);
  const match = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  assert.ok(match !== null, `${where}: a value (and maybe a timestamp) after one space`);
  const text = match[1]!;
  assert.ok(/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text) || ['NaN', '+Inf', '-Inf'].includes(text), `${where}: ${text} is not a value`);
  return { name, labels, value: Number(text.replace('Inf', 'Infinity')) };
}

/** The value of the one sample of `name` with exactly `labels`. */
function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = exposition.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()));
  assert.ok(found.length <= 1, `one sample of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

void test('the parser itself refuses what the format does not allow', () => {
  const ok = '# HELP a_total Some help.\n# TYPE a_total counter\na_total{x="1",y="a\\"b"} 3\n';
  assert.equal(parseExposition(ok).samples[0]!.labels.y, 'a"b');
  for (const bad of [
    '# TYPE a counter\na{x="1"} three\n', // a value that is not a number
    'a 1\n', // a sample without TYPE
    '# TYPE a counter\na{x=1} 1\n', // an unquoted label value
    '# TYPE a counter\n# TYPE b gauge\na 1\nb 1\na 2\n', // a metric's samples apart
    '# TYPE a counter\na{1x="1"} 1\n', // a bad label name
    '# TYPE a counter\na 1', // no final line feed
    '# TYPE a widget\na 1\n', // no such type
  ]) assert.throws(() => parseExposition(bad), `refused: ${JSON.stringify(bad)}`);
});

void test('a Server\'s metrics parse as the exposition format and match the calls made', { timeout: 20_000 }, async (t) => {
  const server = await listen('tcp://127.0.0.1:0', { services: [probeService()], log: () => {} });
  t.after(() => server.close({ graceMs: 0 }));
  const registry = new Registry();
  collectGridwireMetrics(registry, server);
  const client = await connect(server.url, { log: () => {} });
  t.after(() => client.destroy());
  const probe = client.client(Probe);
  for (let i = 0; i < 4; i++) await probe.echo('x');
  for (let i = 0; i < 2; i++) await rejectsWithStatus(probe.fail({ status: Status.NOT_FOUND }), Status.NOT_FOUND);
  // methods the peer makes up: one label, never the name it sent
  for (const name of ['evil_1', 'evil_2']) await rejectsWithStatus(client.client(defineService(name, { x: unary<null, null>() })).x(null), Status.UNIMPLEMENTED);
  await until(() => server.stats().totals.calls.served.started === 8, 2000, 'the server counted every call');

  const text = await registry.metrics();
  const metrics = parseExposition(text);
  const echo = { direction: 'served', method: 'test.probe.v1/echo' };
  const fail = { direction: 'served', method: 'test.probe.v1/fail' };
  assert.equal(valueOf(metrics, 'gridwire_calls_started_total', echo), 4);
  assert.equal(valueOf(metrics, 'gridwire_calls_finished_total', { ...echo, status: 'OK' }), 4);
  assert.equal(valueOf(metrics, 'gridwire_calls_finished_total', { ...fail, status: 'NOT_FOUND' }), 2);
  assert.equal(valueOf(metrics, 'gridwire_calls_finished_total', { direction: 'served', method: 'unknown', status: 'UNIMPLEMENTED' }), 2);
  assert.equal(valueOf(metrics, 'gridwire_calls_in_flight', echo), 0);
  assert.equal(valueOf(metrics, 'gridwire_connections'), 1);
  assert.ok(!text.includes('evil'), 'a made-up method name is never a label');
  const stats = server.stats().totals;
  const bytesIn = valueOf(metrics, 'gridwire_received_bytes_total')!;
  assert.ok(bytesIn > 0 && bytesIn <= stats.bytesIn, `received bytes ${bytesIn} (stats now: ${stats.bytesIn})`);
  assert.ok(valueOf(metrics, 'gridwire_sent_bytes_total')! > 0);
  assert.equal(metrics.types.get('gridwire_calls_started_total'), 'counter');
  assert.equal(metrics.types.get('gridwire_calls_in_flight'), 'gauge');
  assert.equal(metrics.types.get('gridwire_credit_stall_seconds_total'), 'counter');
  for (const name of metrics.types.keys()) assert.match(name, /^gridwire_/);
  // counters keep counting after the connection closes
  await client.close();
  await until(() => server.sessions.size === 0, 2000, 'the session closed');
  const after = parseExposition(await registry.metrics());
  assert.equal(valueOf(after, 'gridwire_calls_started_total', echo), 4);
  assert.equal(valueOf(after, 'gridwire_connections'), 0);
});

void test('an RpcSession\'s metrics show the calls it made; a second source needs a prefix', { timeout: 20_000 }, async (t) => {
  const server = await listen('tcp://127.0.0.1:0', { services: [probeService()], log: () => {} });
  t.after(() => server.close({ graceMs: 0 }));
  const client = await connect(server.url, { log: () => {} });
  t.after(() => client.destroy());
  const registry = new Registry();
  collectGridwireMetrics(registry, client);
  assert.throws(() => collectGridwireMetrics(registry, server), /already been registered/);
  collectGridwireMetrics(registry, server, { prefix: 'gridwire_server_' });
  await client.client(Probe).echo('x');
  const metrics = parseExposition(await registry.metrics());
  assert.equal(valueOf(metrics, 'gridwire_calls_finished_total', { direction: 'made', method: 'test.probe.v1/echo', status: 'OK' }), 1);
  assert.equal(valueOf(metrics, 'gridwire_server_calls_finished_total', { direction: 'served', method: 'test.probe.v1/echo', status: 'OK' }), 1);
  assert.throws(() => collectGridwireMetrics(registry, {} as never), TypeError);
});

void test("import 'gridwire' never loads prom-client: only the gridwire/prometheus entry imports it", () => {
  const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
  const seen = new Set<string>();
  const importers: string[] = [];
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const [, spec] of source.matchAll(/^\s*(?:import|export)\s(?:[^'";]*?\sfrom\s)?'([^']+)'/gm)) {
      if (spec === undefined) continue;
      if (spec.startsWith('.')) walk(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      else if (spec === 'prom-client' || spec.startsWith('@opentelemetry/')) importers.push(`${file} imports ${spec}`);
    }
  };
  walk(join(root, 'src/index.ts'));
  assert.ok(seen.size > 50, `walked the import graph (${seen.size} files)`);
  assert.deepEqual(importers, []);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: string }> };
  assert.equal(pkg.exports['./prometheus']?.import, './dist/observe/prometheus.js');
});
