// Promise.withResolvers (ES2024) for Node 20, which lacks it; imported for its effect by yamux.ts before yamux
// loads. @chainsafe/libp2p-yamux 8 calls it for its keepalive ping and @libp2p/utils for onDrain(): without it the
// ping throws a TypeError that yamux only logs, its RTT stays -1, and a stream's receive window never grows past
// 256 KiB, so bulk over yamux would be measured with a window its users never have (Node 22 has the function).

interface WithResolvers<T> {
  promise: Promise<T>;
  resolve(value: T | PromiseLike<T>): void;
  reject(reason?: unknown): void;
}

const PromiseWithMaybeResolvers = Promise as PromiseConstructor & { withResolvers?: <T>() => WithResolvers<T> };

if (typeof PromiseWithMaybeResolvers.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers<T>(): WithResolvers<T> {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

export {};
