// The sending loop shared by the raw and grpc-js rows: write one reused chunk (or message) to a Node Writable until
// the scenario's stop signal, and wait for 'drain' whenever write() says the buffer is full, so no row ever queues
// more than its stream's high-water mark. Knows nothing of sockets or gRPC.
import type { Writable } from 'node:stream';
import type { SideContext } from './scenario.js';

/** Writes `item` (counting `bytes` each time) until ctx.stopSending aborts; resolves when it stops. */
export function pump(out: Writable, item: unknown, bytes: number, ctx: SideContext): Promise<void> {
  return new Promise((resolve, reject) => {
    out.once('error', reject);
    function fill(): void {
      while (!ctx.stopSending.aborted) {
        ctx.sent.add(bytes);
        if (!out.write(item)) {
          out.once('drain', fill);
          return;
        }
      }
      out.off('error', reject);
      resolve();
    }
    fill();
  });
}
