/** PLACEHOLDER until h-transfer lands. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mesh } from '../../mesh/mesh.js';
import type { ServiceImpl } from '../../rpc/server/registry.js';
import type { TransferProgress } from './messages.js';

export function receiverServices(_dir: string): ServiceImpl[] {
  return [];
}

export class Replication {
  constructor(private readonly mesh: Mesh, private readonly order: { to: string[]; size: number; seed: string; name: string }) {}
  progress(): TransferProgress[] {
    return [];
  }
  start(done: (transfer: TransferProgress, error?: string, digest?: string) => void): void {
    for (const to of this.order.to) {
      done({ to, name: this.order.name, doneBytes: 0, totalBytes: this.order.size, sentBytes: 0, attempts: 1, resumedFrom: 0, startedAt: Date.now(), finishedAt: Date.now() }, 'not built');
    }
  }
  abort(): void {}
}

/** The sha256 of the copy of `name` in `dir` (after flipping one byte of it when `corrupt`: the test of a failed check). */
export async function verifyReceived(dir: string, name: string, corrupt: boolean): Promise<{ sha256: string; bytes: number; ms: number }> {
  const path = join(dir, name);
  const start = performance.now();
  if (corrupt) {
    const file = await open(path, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, 0);
      byte[0] = byte[0]! ^ 0xff;
      await file.write(byte, 0, 1, 0);
    } finally {
      await file.close();
    }
  }
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const piece of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    hash.update(piece as Buffer);
    bytes += (piece as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes, ms: Math.round(performance.now() - start) };
}
