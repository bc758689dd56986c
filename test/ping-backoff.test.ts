/**
 * gRFC A8's client side: a channel whose keepalive pings more often than the server permits is closed with
 * GOAWAY ENHANCE_YOUR_CALM "too many pings"; it redials with half the ping rate instead of repeating the offence.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { channel, defineService, listen, serve, unary } from '../src/index.js';
import { socketPath, until, within } from './helpers.js';

const Echo = defineService('pingbackoff.v1', { echo: unary<string, string>() });

void test('a channel closed for too many pings redials with its keepalive interval doubled', { timeout: 15_000 }, async (t) => {
  const url = `unix://${socketPath()}`;
  // burst 16 at one per 400 ms; the channel's idle keepalive pings about every 2 x 20 ms
  const server = await listen(url, { services: [serve(Echo, { echo: (s) => s })], peerPingIntervalMs: 400, log: () => undefined });
  t.after(() => within(server.close({ graceMs: 0 }), 3000, 'server close'));
  const warnings: string[] = [];
  const ch = channel(url, {
    keepaliveIntervalMs: 20,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50, lossSpreadMs: 10 },
    log: (level, message) => level === 'warn' && warnings.push(message),
  });
  t.after(() => within(ch.close({ graceMs: 0 }), 3000, 'channel close'));
  await until(() => warnings.some((w) => w.includes('keepaliveIntervalMs is now 40')), 5000, 'the first doubling');
  await until(() => warnings.some((w) => /keepaliveIntervalMs is now (160|320|640)/.test(w)), 10_000, 'the interval to keep doubling while the server still objects');
  assert.equal(await ch.client(Echo).echo('still here', { waitForReady: true, timeoutMs: 3000 }), 'still here');
});

void test('the side that closed a connection for too many pings does not slow its own keepalive', { timeout: 10_000 }, async (t) => {
  const url = `unix://${socketPath()}`;
  // here the server over-pings: the channel (default peerPingIntervalMs 1000) is the one that closes connections
  const server = await listen(url, { services: [serve(Echo, { echo: (s) => s })], keepaliveIntervalMs: 20, log: () => undefined });
  t.after(() => within(server.close({ graceMs: 0 }), 3000, 'server close'));
  const logs: string[] = [];
  const ch = channel(url, { reconnect: { initialDelayMs: 10, maxDelayMs: 50, lossSpreadMs: 10 }, log: (_level, message) => logs.push(message) });
  t.after(() => within(ch.close({ graceMs: 0 }), 3000, 'channel close'));
  await until(() => logs.some((m) => m.includes('connection lost') && m.includes('too many pings')), 5000, 'the channel to close a connection for too many pings');
  assert.ok(!logs.some((m) => m.includes('keepaliveIntervalMs is now')), `the channel did not slow down its own pings: ${logs.join(' | ')}`);
});
