/**
 * The demo's dataset: `size` bytes that look random (they do not compress, so nothing flatters the transfer) but are
 * a function of a seed and cheap to make: AES-256-CTR over zeros, keyed by sha256(seed). CTR mode can start at any
 * byte, so a resumed transfer reads from its offset without making what comes before. Several GiB/s with AES-NI.
 */
import { createCipheriv, createHash } from 'node:crypto';

/** Bytes per piece generated. */
const PIECE_BYTES = 256 * 1024;
const BLOCK_BYTES = 16;
const ZEROS = Buffer.alloc(PIECE_BYTES);

/** The pieces of the dataset from byte `offset` to its end. */
export async function* generateDataset(seed: string, size: number, offset = 0): AsyncGenerator<Buffer> {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) throw new RangeError(`offset ${offset} is outside the dataset (0..${size})`);
  const key = createHash('sha256').update(seed).digest();
  const counter = Buffer.alloc(BLOCK_BYTES);
  counter.writeBigUInt64BE(BigInt(Math.floor(offset / BLOCK_BYTES)), 8);
  const cipher = createCipheriv('aes-256-ctr', key, counter);
  const skip = offset % BLOCK_BYTES;
  if (skip > 0) cipher.update(ZEROS.subarray(0, skip));
  for (let at = offset; at < size; at += PIECE_BYTES) {
    yield cipher.update(ZEROS.subarray(0, Math.min(PIECE_BYTES, size - at)));
  }
}
