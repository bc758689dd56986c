/**
 * A live session fuzzed with fixed seeds (reliability.md T-F2, T-F6): the `session` target of test/fuzz/, a hostile
 * peer's frame sequences (mostly valid, from a small grammar, sometimes mutated or cut) into an RpcSession serving the
 * echo service over the in-memory pair, as acceptor and as dialer, each delivered whole and split at random byte
 * boundaries. The process handlers the target installs for each run stand in for --unhandled-rejections=strict: an
 * uncaught exception or an unhandled rejection fails the input. `npm run fuzz -- --target session` runs it with
 * random seeds.
 */
import { test } from 'node:test';

import fc from 'fast-check';

import { propertyOf } from '../fuzz/harness.js';
import { sessionTarget } from '../fuzz/session-target.js';

void test('T-F2 T-F6 live-session fuzz, both roles: random frame sequences end only in typed errors (a GOAWAY with its code, or the peer\'s close), never an uncaught exception, an unhandled rejection or a hang; an open session answers a PING; nothing is left after close; the same bytes split at random boundaries end the same', async () => {
  await fc.assert(propertyOf(sessionTarget), { seed: 20261208, numRuns: 300 });
});
