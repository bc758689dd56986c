/**
 * A malformed address is the caller's mistake, found where the address is given: a TypeError naming the address and
 * what an address looks like (tcp://host:port, unix:///path). `connect()` and `listen()` reject with it before
 * dialing or listening; `channel()`, `new Mesh({ listen, peers })` and `mesh.addPeer()` throw it at once. It used to
 * be a retry-safe UNAVAILABLE from connect(), and a channel or mesh peer went into backoff and redialed it for ever.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { channel, connect, listen, Mesh, RpcError, type Channel } from '../../src/index.js';
import { within } from '../helpers.js';

/** Malformed addresses, and what the TypeError must say about each (the address itself, and the form to use). */
const MALFORMED: readonly { url: string; says: RegExp }[] = [
  { url: 'http://127.0.0.1:7000', says: /"http:\/\/127\.0\.0\.1:7000".*use tcp:\/\/host:port or unix:\/\/\/path/ },
  { url: '127.0.0.1:7000', says: /"127\.0\.0\.1:7000".*use tcp:\/\/host:port or unix:\/\/\/path/ },
  { url: 'tcp://127.0.0.1', says: /"tcp:\/\/127\.0\.0\.1".*use tcp:\/\/host:port/ },
  { url: 'tcp://127.0.0.1:70000', says: /"tcp:\/\/127\.0\.0\.1:70000".*use tcp:\/\/host:port \(port 0-65535\)/ },
  { url: 'unix://relative.sock', says: /"unix:\/\/relative\.sock".*use unix:\/\/\/absolute\/path/ },
];

const quiet = { log: (): void => undefined };

/** Asserts `error` is the TypeError for a malformed address (not an RpcError to retry), saying `says`. */
function assertAddressError(error: unknown, says: RegExp, what: string): void {
  assert.ok(!(error instanceof RpcError), `${what}: an RpcError (${String(error)}) for a malformed address`);
  assert.ok(error instanceof TypeError, `${what}: expected a TypeError, got ${String(error)}`);
  assert.match(error.message, says, what);
}

/** Asserts `make()` throws the address's TypeError; if it returns instead, closes what it made (it would redial for ever). */
async function assertThrowsAtOnce(make: () => { close(): Promise<void> } | { stop(): Promise<void> }, says: RegExp, what: string): Promise<void> {
  let made: { close(): Promise<void> } | { stop(): Promise<void> };
  try {
    made = make();
  } catch (error) {
    assertAddressError(error, says, what);
    return;
  }
  await within('close' in made ? made.close() : made.stop(), 2000, `closing what ${what} made`);
  assert.fail(`${what} did not throw for a malformed address`);
}

void describe('a malformed address is a TypeError naming it and the schemes, where it is given', () => {
  void test('connect() rejects with it before dialing, not with a retry-safe UNAVAILABLE', { timeout: 5000 }, async () => {
    for (const { url, says } of MALFORMED) {
      let attempt!: Promise<unknown>;
      assert.doesNotThrow(() => (attempt = connect(url, { connectTimeoutMs: 1000 })), `connect(${url}) threw instead of rejecting`);
      const error = await within(attempt.then(() => assert.fail(`connect(${url}) resolved`), (e: unknown) => e), 2000, `connect(${url})`);
      assertAddressError(error, says, `connect(${url})`);
    }
  });

  void test('listen() rejects with it before listening', { timeout: 5000 }, async () => {
    for (const { url, says } of MALFORMED) {
      const error = await within(listen(url).then(async (server) => {
        await server.close({ graceMs: 0 });
        assert.fail(`listen(${url}) resolved`);
      }, (e: unknown) => e), 2000, `listen(${url})`);
      assertAddressError(error, says, `listen(${url})`);
    }
  });

  void test('channel() throws it at once, rather than redialing it for ever', { timeout: 5000 }, async () => {
    for (const { url, says } of MALFORMED) {
      await assertThrowsAtOnce((): Channel => channel(url, quiet), says, `channel(${url})`);
    }
  });

  void test('new Mesh() throws it for a peer or its own listen address; mesh.addPeer() for the new peer, and the mesh is unchanged', { timeout: 5000 }, async (t) => {
    for (const { url, says } of MALFORMED) {
      await assertThrowsAtOnce(() => new Mesh({ name: 'n1', peers: { n2: url }, ...quiet }), says, `new Mesh({ peers: { n2: ${url} } })`);
      await assertThrowsAtOnce(() => new Mesh({ name: 'n1', listen: url, ...quiet }), says, `new Mesh({ listen: ${url} })`);
    }
    // a started mesh: a peer with a malformed address would go into backoff and redial for ever
    const mesh = new Mesh({ name: 'n1', peers: { n2: null }, ...quiet });
    t.after(() => within(mesh.stop({ graceMs: 0 }), 2000, 'mesh stop'));
    await within(mesh.start(), 2000, 'mesh start');
    for (const { url, says } of MALFORMED) {
      let error: unknown;
      try {
        mesh.addPeer('n3', url);
      } catch (e) {
        error = e;
      }
      assertAddressError(error, says, `mesh.addPeer('n3', ${url})`);
      assert.deepEqual(mesh.peerNames, ['n2'], 'a refused peer is not added');
    }
  });
});
