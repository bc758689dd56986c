/**
 * `gridwire call` and `gridwire ping`, run as the user runs them (a child process, test/fixtures/cli.ts) against a
 * node this test starts (test/fixtures/cli-target.ts, token required): happy paths (msgpack and json codecs, a
 * request from stdin, metadata and trailers, a server stream as NDJSON, --json) and the bad inputs, each with its exit
 * code: a malformed address 2, nothing listening 3, an unknown method 6 (UNIMPLEMENTED), bad JSON 2, a wrong token 4.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { testPki } from '../fixtures/certs.js';
import { runCli } from '../../src/cli/main.js';
import { runGridwire, type CliResult } from '../fixtures/cli.js';
import { startTlsServer, whoService } from '../fixtures/tls.js';
import { until } from '../helpers.js';

const TOKEN = 'cli-test-token-0123456789';
const env = { GRIDWIRE_TOKEN: TOKEN };
let target: ChildProcess | undefined;
let url = '';

before(async () => {
  target = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../fixtures/cli-target.ts', import.meta.url))], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, GRIDWIRE_TEST_TOKEN: TOKEN },
  });
  let out = '';
  let err = '';
  target.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  target.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  await until(() => out.includes('\n') || target!.exitCode !== null, 20_000, `the target to listen (${err})`);
  url = String((JSON.parse(out.split('\n')[0]!) as { url: string }).url);
});
after(() => {
  target?.stdin?.destroy();
  target?.kill('SIGKILL');
});

/** A loopback address where nothing listens: a port just bound and released. */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `tcp://127.0.0.1:${port}`;
}

const gw = (args: string[], options: Parameters<typeof runGridwire>[1] = {}): Promise<CliResult> => runGridwire(args, { timeoutMs: 20_000, env, ...options });

function assertExit(result: CliResult, code: number, what: string): void {
  assert.equal(result.code, code, `${what}: exit ${result.code}, stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr)}`);
}

void describe('gridwire call', { concurrency: 3 }, () => {
  void test('a unary call by path: the JSON request (msgpack on the wire) and metadata reach the handler, the response is printed as one JSON line; --trailers', async () => {
    const result = await gw(['call', url, 'demo.v1/echo', '{"path": "/etc/hosts", "n": 3, "raw": {"$bytes": "AAEC"}}', '--metadata', 'x-request-id=r1', '--metadata', 'x-two=2', '--trailers']);
    assertExit(result, 0, 'call');
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, 'one line when stdout is not a terminal');
    const response = JSON.parse(lines[0]!) as { request: unknown; metadata: Record<string, string> };
    assert.deepEqual(response.request, { path: '/etc/hosts', n: 3, raw: { $bytes: 'AAEC' } });
    assert.equal(response.metadata['x-request-id'], 'r1');
    assert.equal(response.metadata['x-two'], '2');
    assert.match(result.stderr, /trailers: \{"x-served-by":"cli-target"\}/);
  });

  void test('--codec json, the request from stdin (-), and --json', async () => {
    const result = await gw(['call', url, 'demo.v1/echoJson', '-', '--codec', 'json', '--json'], { stdin: '{"from": "stdin"}' });
    assertExit(result, 0, 'call json');
    const out = JSON.parse(result.stdout) as { ok: boolean; response: { request: unknown; codec: string } };
    assert.equal(out.ok, true);
    assert.deepEqual(out.response.request, { from: 'stdin' });
    assert.equal(out.response.codec, 'json');
  });

  void test('on a terminal the response is indented JSON (in process, stdout a TTY)', async () => {
    const stdout = Object.assign(new PassThrough(), { isTTY: true });
    const stderr = new PassThrough();
    let text = '';
    stdout.setEncoding('utf8').on('data', (s: string) => (text += s));
    const code = await runCli(['call', url, 'demo.v1/echo', '{"a": [1, 2]}'], { stdin: Readable.from([]), stdout, stderr, env, signal: new AbortController().signal });
    assert.equal(code, 0);
    assert.equal(text, `${JSON.stringify({ request: { a: [1, 2] }, metadata: {} }, null, 2)}\n`);
  });

  void test('--stream prints each response of a server stream as one JSON line', async () => {
    const result = await gw(['call', url, 'demo.v1/count', '{"n": 3}', '--stream']);
    assertExit(result, 0, 'stream');
    assert.deepEqual(result.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown), [{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  void test('a call that fails with a status: exit 6 and NAME: message; an unknown method is UNIMPLEMENTED', async () => {
    const failed = await gw(['call', url, 'demo.v1/fail', '{}', '--trailers']);
    assertExit(failed, 6, 'fail');
    assert.match(failed.stderr, /NOT_FOUND: nothing here/);
    assert.match(failed.stderr, /"x-reason":"test"/);
    const unknown = await gw(['call', url, 'demo.v1/nope', '{}', '--json']);
    assertExit(unknown, 6, 'unknown method');
    const report = JSON.parse(unknown.stdout) as { ok: boolean; status: string; error: string };
    assert.equal(report.ok, false);
    assert.equal(report.status, 'UNIMPLEMENTED');
    assert.match(report.error, /^UNIMPLEMENTED: /);
  });

  void test('bad input: bad JSON 2, a malformed address 2, a path without a method 2, nothing listening 3, a wrong token 4', async () => {
    const dead = await deadAddress();
    const [badJson, badAddress, badPath, nothing, wrongToken] = await Promise.all([
      gw(['call', url, 'demo.v1/echo', '{"unterminated": ']),
      gw(['call', 'http://nowhere', 'demo.v1/echo', '{}']),
      gw(['call', url, 'demo.v1', '{}']),
      gw(['call', dead, 'demo.v1/echo', '{}', '--timeout', '5s']),
      gw(['call', url, 'demo.v1/echo', '{}'], { env: { GRIDWIRE_TOKEN: 'wrong-token' } }),
    ]);
    assertExit(badJson, 2, 'bad JSON');
    assert.match(badJson.stderr, /REQUEST is not valid JSON/);
    assertExit(badAddress, 2, 'malformed address');
    assert.match(badAddress.stderr, /tcp:\/\//, 'the error shows the valid forms');
    assertExit(badPath, 2, 'path without method');
    assertExit(nothing, 3, 'nothing listening');
    assert.match(nothing.stderr, /UNAVAILABLE/);
    assertExit(wrongToken, 4, 'wrong token');
    assert.match(wrongToken.stderr, /UNAUTHENTICATED/);
    assert.ok(!wrongToken.stderr.includes('wrong-token') && !wrongToken.stderr.includes(TOKEN), 'no token in the error');
  });
});

void describe('gridwire ping', { concurrency: 2 }, () => {
  void test('prints the handshake facts, one line per reply and min/avg/max', async () => {
    const result = await gw(['ping', url, '--count', '3', '--interval', '10ms']);
    assertExit(result, 0, 'ping');
    assert.match(result.stdout, /node "cli-target" label "test", protocol v1 over tcp/);
    assert.match(result.stdout, /limits: frame 65536 B, message 4194304 B, \d+ concurrent streams/);
    assert.match(result.stdout, /tls: none/);
    assert.equal(result.stdout.match(/seq=\d rtt=[\d.]+ ms/g)?.length, 3);
    assert.match(result.stdout, /3 replies, rtt min\/avg\/max = [\d.]+\/[\d.]+\/[\d.]+ ms/);
  });

  void test('--json: one object with the peer, the round trips and their summary', async () => {
    const result = await gw(['ping', url, '--count', '2', '--interval', '1ms', '--json']);
    assertExit(result, 0, 'ping --json');
    const report = JSON.parse(result.stdout) as { ok: boolean; peer: { nodeName: string; protocolVersion: number; limits: { maxFrameBytes: number } }; rttsMs: number[]; minMs: number; maxMs: number };
    assert.equal(report.ok, true);
    assert.equal(report.peer.nodeName, 'cli-target');
    assert.equal(report.peer.protocolVersion, 1);
    assert.equal(report.peer.limits.maxFrameBytes, 65_536);
    assert.equal(report.rttsMs.length, 2);
    assert.ok(report.minMs <= report.maxMs && report.minMs > 0);
  });

  void test('over mutual TLS: the server certificate\'s identity (CN, SANs, fingerprint) is shown; without our certificate it is refused 4', async (t) => {
    const { server } = await startTlsServer(t, { nodeName: 'tls-target', services: [whoService()] });
    const dir = await mkdtemp(join(tmpdir(), 'gw-ping-tls-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pki = testPki();
    await Promise.all([writeFile(join(dir, 'ca.pem'), pki.ca), writeFile(join(dir, 'cert.pem'), pki.client.cert), writeFile(join(dir, 'key.pem'), pki.client.key)]);
    const tlsFlags = ['--tls-ca', join(dir, 'ca.pem'), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')];
    const [human, json, noCert] = await Promise.all([
      gw(['ping', server.url, '--count', '1', ...tlsFlags]),
      gw(['ping', server.url, '--count', '1', '--json', ...tlsFlags]),
      gw(['ping', server.url, '--count', '1', '--tls-ca', join(dir, 'ca.pem')]),
    ]);
    assertExit(human, 0, 'ping over TLS');
    assert.match(human.stdout, /protocol v1 over tls/);
    assert.match(human.stdout, /tls: CN=\S+.*sha256 [0-9A-F:]{95}, valid to \d{4}-/);
    assertExit(json, 0, 'ping over TLS --json');
    const report = JSON.parse(json.stdout) as { peer: { nodeName: string; tls: { fingerprint256: string; commonName: string } } };
    assert.equal(report.peer.nodeName, 'tls-target');
    assert.match(report.peer.tls.fingerprint256, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
    assertExit(noCert, 4, 'no client certificate');
  });

  void test('bad input: a malformed address 2, nothing listening 3, a wrong token 4, a bad --count 2', async () => {
    const dead = await deadAddress();
    const [badAddress, nothing, wrongToken, badCount] = await Promise.all([
      gw(['ping', 'tcp://127.0.0.1']),
      gw(['ping', dead, '--json']),
      gw(['ping', url], { env: { GRIDWIRE_TOKEN: 'wrong-token' } }),
      gw(['ping', url, '--count', 'many']),
    ]);
    assertExit(badAddress, 2, 'malformed address');
    assertExit(nothing, 3, 'nothing listening');
    assert.equal((JSON.parse(nothing.stdout) as { status: string }).status, 'UNAVAILABLE');
    assertExit(wrongToken, 4, 'wrong token');
    assertExit(badCount, 2, 'bad count');
  });
});
