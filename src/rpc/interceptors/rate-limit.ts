/**
 * Per-method rate limits, a server interceptor: a token bucket per method (and, optionally, per method and peer)
 * refuses a call beyond its rate with RESOURCE_EXHAUSTED before the handler runs. Keys are never what a peer sends:
 * methods are the registered ones (a path that matches none is UNIMPLEMENTED before any interceptor), and a peer is
 * named by default by what it cannot choose: its verified certificate, else its IP address (without the port, which a
 * reconnecting peer changes), never the node name of its HELLO. Peer buckets are kept in a map bounded by `maxPeers`,
 * least recently used out, so the memory does not grow with how many peers there are; a bucket is evicted full, which
 * is what a peer that can take many addresses (or a `key` that trusts what it says) gets back: keep a per-method limit
 * (`perPeer: false`, or a separate interceptor) for a bound on everyone together.
 */
import { Status } from '../../wire/constants.js';
import type { MethodInfo } from '../interceptor.js';
import { RpcError } from '../rpc-error.js';
import type { HandlerContext } from '../server/context.js';
import type { ServerInterceptor } from '../server/interceptor.js';
import { checkMethodTable, lookupMethod, MethodMemo, type MethodTable } from './method-table.js';

/** A rate: `ratePerSec` calls a second on average, up to `burst` at once (default: the rate, at least 1). */
export interface RateLimit {
  ratePerSec: number;
  burst?: number;
}

export interface RateLimitOptions {
  /** The limit per method, keyed `service/method`, `service/*` or `*`; a method without an entry is not limited. */
  limits: MethodTable<RateLimit>;
  /**
   * Limit each peer separately (a bucket per method and peer) rather than all callers of a method together. `key`
   * names the peer; the default is what the peer cannot choose: its verified TLS certificate's `fingerprint256`, else
   * its IP address without the port (every connection from one host shares a bucket, whatever it calls itself; a
   * Unix socket's or an in-memory pair's peers share one), else its address. A `key` returning `ctx.peer.nodeName`
   * trusts the peer: the node name is whatever its HELLO says, so a peer gets a fresh bucket by changing it, drains
   * another peer's bucket by claiming that peer's name, and evicts the others' buckets by making up `maxPeers` names;
   * use it only where every peer is trusted (or the name is checked, e.g. against the certificate in `authorize`).
   * `maxPeers` bounds the buckets kept per method (default 1 000, 1 - 1 000 000; the least recently used goes).
   */
  perPeer?: boolean | { key?: (ctx: HandlerContext) => string; maxPeers?: number };
}

export const DEFAULT_MAX_PEER_BUCKETS = 1000;
const MAX_PEER_BUCKETS_LIMIT = 1_000_000;

/** A token bucket: holds up to `burst` tokens, refilled at `ratePerSec`; a call takes one. */
class TokenBucket {
  private tokens: number;
  private updated = performance.now();

  constructor(private readonly limit: Required<RateLimit>) {
    this.tokens = limit.burst;
  }

  /** Takes a token: 0 if there was one, else the ms until there will be. */
  take(now: number): number {
    const { ratePerSec, burst } = this.limit;
    this.tokens = Math.min(burst, this.tokens + ((now - this.updated) * ratePerSec) / 1000);
    this.updated = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / ratePerSec);
  }
}

/** The buckets of one method: one for all callers, or one per peer in a map bounded by maxPeers (LRU). */
class MethodBuckets {
  private readonly shared: TokenBucket | undefined;
  private readonly byPeer: Map<string, TokenBucket> | undefined;

  constructor(readonly path: string, private readonly limit: Required<RateLimit>, private readonly maxPeers: number | undefined) {
    if (maxPeers === undefined) this.shared = new TokenBucket(limit);
    else this.byPeer = new Map();
  }

  bucketFor(peer: string | undefined): TokenBucket {
    if (this.shared !== undefined) return this.shared;
    const map = this.byPeer!;
    const key = peer ?? '';
    let bucket = map.get(key);
    if (bucket !== undefined) {
      map.delete(key); // re-inserted below: the most recently used is last
    } else {
      bucket = new TokenBucket(this.limit);
      if (map.size >= this.maxPeers!) map.delete(map.keys().next().value!);
    }
    map.set(key, bucket);
    return bucket;
  }

  describe(): string {
    const { ratePerSec, burst } = this.limit;
    return `${ratePerSec} calls/s (burst ${burst})${this.maxPeers === undefined ? '' : ' per peer'}`;
  }
}

function checkRate(value: unknown, where: string): void {
  const r = value as Partial<RateLimit> | null;
  if (r === null || typeof r !== 'object') throw new TypeError(`${where} must be { ratePerSec, burst? }`);
  if (typeof r.ratePerSec !== 'number' || !Number.isFinite(r.ratePerSec) || r.ratePerSec <= 0) {
    throw new RangeError(`${where}.ratePerSec must be a number above 0, not ${String(r.ratePerSec)}`);
  }
  if (r.burst !== undefined && (!Number.isInteger(r.burst) || r.burst < 1 || r.burst > 2 ** 31 - 1)) {
    throw new RangeError(`${where}.burst must be an integer 1 - 2^31-1, not ${String(r.burst)}`);
  }
}

/** Schemes whose peer address is `scheme://host:port[/path]`, the host an IP address (an IPv6 one in brackets). */
const HOST_PORT_SCHEMES = ['tcp://', 'tls://', 'ws://', 'wss://'];

/**
 * The host of a peer address (`tcp://10.0.0.7:53122` -> `10.0.0.7`, `tls://[::1]:4000` -> `::1`), an IPv4 address
 * mapped into IPv6 written as IPv4 (a dual-stack listener sees `::ffff:10.0.0.7`); an address without a host and port
 * (`unix://...`, `memory://...`) as it is.
 */
export function remoteHostOf(address: string): string {
  const scheme = HOST_PORT_SCHEMES.find((s) => address.startsWith(s));
  if (scheme === undefined) return address;
  const start = scheme.length;
  let host: string;
  if (address.startsWith('[', start)) {
    const end = address.indexOf(']', start);
    if (end < 0) return address;
    host = address.slice(start + 1, end);
  } else {
    const end = address.indexOf(':', start);
    if (end < 0) return address;
    host = address.slice(start, end);
  }
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(host);
  return mapped === null ? host : mapped[1]!;
}

/** The default keys of the sessions seen, so that a call parses nothing (one entry per session, gone with it). */
const defaultKeys = new WeakMap<HandlerContext['peer'], string>();

/**
 * The default key of a peer: its verified certificate's fingerprint, else its IP address without the port, else its
 * address. Never its node name: that is what the peer says it is.
 */
export function defaultPeerKey(ctx: HandlerContext): string {
  const peer = ctx.peer;
  let key = defaultKeys.get(peer);
  if (key === undefined) {
    key = peer.identity?.fingerprint256 ?? remoteHostOf(peer.address);
    defaultKeys.set(peer, key);
  }
  return key;
}

/**
 * A server interceptor refusing calls beyond their method's rate with RESOURCE_EXHAUSTED ("rate limit of 10 calls/s
 * (burst 10) for files.v1/put exceeded; retry in 80 ms"), before the handler runs; the retry hint also travels as the
 * trailer entry `retry-after-ms`.
 */
export function rateLimitCalls(options: RateLimitOptions): ServerInterceptor {
  if (options === null || typeof options !== 'object') throw new TypeError('rateLimitCalls takes { limits, perPeer? }');
  checkMethodTable<RateLimit>(options.limits, 'rateLimitCalls: limits', checkRate);
  const perPeer = options.perPeer;
  let maxPeers: number | undefined;
  let keyOf: ((ctx: HandlerContext) => string) | undefined;
  if (perPeer !== undefined && perPeer !== false) {
    const settings = perPeer === true ? {} : perPeer;
    maxPeers = settings.maxPeers ?? DEFAULT_MAX_PEER_BUCKETS;
    if (!Number.isInteger(maxPeers) || maxPeers < 1 || maxPeers > MAX_PEER_BUCKETS_LIMIT) {
      throw new RangeError(`rateLimitCalls: perPeer.maxPeers must be an integer 1 - ${MAX_PEER_BUCKETS_LIMIT}, not ${String(maxPeers)}`);
    }
    keyOf = settings.key ?? defaultPeerKey;
    if (typeof keyOf !== 'function') throw new TypeError('rateLimitCalls: perPeer.key must be a function (ctx) => string');
  }
  // one set of buckets per method path for every chain this interceptor is in: the sessions a listener accepts share
  // one registry, but each connection a channel or mesh dials composes its own chains, and a peer must not get a
  // fresh bucket by connecting again. Keys are the paths of registered methods only (bounded by the application).
  const byPath = new Map<string, MethodBuckets | undefined>();
  const bucketsOf = (method: MethodInfo): MethodBuckets | undefined => {
    if (byPath.has(method.path)) return byPath.get(method.path);
    const limit = lookupMethod(options.limits, method);
    const buckets = limit === undefined ? undefined : new MethodBuckets(method.path, { ratePerSec: limit.ratePerSec, burst: limit.burst ?? Math.max(1, Math.ceil(limit.ratePerSec)) }, maxPeers);
    byPath.set(method.path, buckets);
    return buckets;
  };
  return (next) => {
    // this chain's method, found on its first call
    const memo = new MethodMemo(bucketsOf);
    return (call) => {
      const buckets = memo.get(call.method);
      if (buckets === undefined) return next(call);
      const waitMs = buckets.bucketFor(keyOf?.(call.ctx)).take(performance.now());
      if (waitMs === 0) return next(call);
      return Promise.reject(
        new RpcError(Status.RESOURCE_EXHAUSTED, `rate limit of ${buckets.describe()} for ${buckets.path} exceeded; retry in ${waitMs} ms`, {
          metadata: { 'retry-after-ms': String(waitMs) },
        }),
      );
    };
  };
}
