/**
 * Peers from a file: a JSON object of node name -> address (`{"n2": "tcp://10.0.0.2:7001", ...}`), re-read when its
 * directory says it changed (fs.watch on the directory, not the file: editors and `mv` replace the file, and a watch on
 * the old one would go quiet) and every `intervalMs` in any case (a watch can miss events, or be unavailable). JSON
 * because a half-written file is then invalid as a whole (no closing brace) rather than a valid shorter list: an
 * invalid, unreadable or missing file is a failed read, and the last good set stays. Only a regular file is read: a
 * FIFO (or a device) would block the thread-pool thread that opens or reads it until a writer comes, maybe for ever,
 * so it is a failed read too, checked by stat and again on the handle, opened O_NONBLOCK (a FIFO swapped in between
 * cannot block the open). Knows nothing of meshes.
 */
import { constants, watch, type FSWatcher, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { RefreshLoop } from './refresh-loop.js';
import { resolveSourceOptions, type MembershipSink, type MembershipSource, type MembershipSourceOptions } from './membership.js';

export interface FileMembershipOptions extends MembershipSourceOptions {
  /** The file: a JSON object, node name -> address (what `addPeer` takes). */
  path: string;
}

/** Default interval of the polling that backs the watch: cheap (a stat, the file read only when it changed). */
const DEFAULT_INTERVAL_MS = 5_000;
/** A membership file larger than this is refused (a failed read): 1 000 peers take ~60 KiB. */
export const MAX_MEMBERSHIP_FILE_BYTES = 1024 * 1024;
/** Changes often come as several events (truncate, write, rename): one read after they settle. */
const WATCH_SETTLE_MS = 20;

/** Peers from a JSON file `{ name: address }`, re-read when it changes (watched) and every `intervalMs` (default 5 000). */
export function fileMembership(options: FileMembershipOptions): FileMembership {
  return new FileMembership(options);
}

/** The source fileMembership() makes; `refresh()` reads now. */
export class FileMembership implements MembershipSource {
  readonly description: string;
  readonly removeAfterMs: number;
  readonly maxPeers: number;
  readonly graceMs: number;
  private readonly path: string;
  private readonly loop: RefreshLoop;
  private sink: MembershipSink | undefined;
  private watcher: FSWatcher | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The last good read and the file's identity then (inode, size, times): unchanged, it is not read again. */
  private last: { key: string; peers: Array<[string, string]> } | undefined;
  /** Set by the watch: read the file even if its stat looks the same (times have a coarse grain on some systems). */
  private changed = false;

  /** @internal Use fileMembership(). */
  constructor(options: FileMembershipOptions) {
    if (typeof options?.path !== 'string' || options.path === '') throw new TypeError('fileMembership: path must be a non-empty string');
    this.path = resolve(options.path);
    const resolved = resolveSourceOptions('fileMembership', options, DEFAULT_INTERVAL_MS);
    ({ removeAfterMs: this.removeAfterMs, maxPeers: this.maxPeers, graceMs: this.graceMs } = resolved);
    this.description = `file ${this.path}`;
    this.loop = new RefreshLoop(resolved.intervalMs, () => this.read());
  }

  start(sink: MembershipSink): void {
    this.sink = sink;
    this.loop.start();
  }

  stop(): void {
    this.stopped = true;
    this.loop.stop();
    clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  /**
   * Reads now, or as soon as it may (after the read under way, and at least a second after the last read ended);
   * resolves once that read has ended. The next timed read comes one interval after it.
   */
  refresh(): Promise<void> {
    this.changed = true;
    return this.loop.now();
  }

  /** @internal Whether anything of the source is still live (tests: nothing once stopped). */
  get active(): boolean {
    return this.watcher !== undefined || this.loop.armed || this.settleTimer !== undefined;
  }

  private async read(): Promise<void> {
    this.ensureWatch(); // again at every read: a directory that was missing, or a watch that failed, comes back
    const sink = this.sink!;
    const forced = this.changed;
    this.changed = false;
    try {
      const info = await stat(this.path);
      refuseIrregular(this.path, info);
      const key = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
      if (!forced && this.last?.key === key) {
        sink.update(this.last.peers); // unchanged: the same answer again (a missing peer is removed only at an answer)
        return;
      }
      const peers = parsePeers(await readBounded(this.path, MAX_MEMBERSHIP_FILE_BYTES), this.path);
      this.last = { key, peers };
      sink.update(peers);
    } catch (error) {
      sink.fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private ensureWatch(): void {
    if (this.watcher !== undefined || this.stopped) return;
    const name = basename(this.path);
    try {
      // not persistent: a source never keeps the process alive
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename === null || filename.toString() === name) this.onChange();
      });
    } catch {
      return; // no directory (yet), or no watch here: polling alone, and another try at the next read
    }
    this.watcher.on('error', () => {
      this.watcher?.close();
      this.watcher = undefined;
    });
  }

  private onChange(): void {
    if (this.stopped) return;
    this.changed = true;
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.loop.soon();
    }, WATCH_SETTLE_MS);
    this.settleTimer.unref();
  }
}

/** The file's bytes, refused past `max` (counted while reading: the file may grow after any stat). */
async function readBounded(path: string, max: number): Promise<Buffer> {
  // O_NONBLOCK: opening a FIFO for reading waits for a writer otherwise; it changes nothing for a regular file
  const handle = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  try {
    refuseIrregular(path, await handle.stat()); // what was opened, which may not be what stat saw
    const buffer = Buffer.allocUnsafe(max + 1); // only when the file changed: a read of an unchanged file stops at stat
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) return buffer.subarray(0, length);
      length += bytesRead;
      if (length > max) throw new Error(`${path}: larger than ${max} bytes`);
    }
  } finally {
    await handle.close();
  }
}

/** Throws unless `info` is a regular file's: reading anything else may block (a FIFO, a terminal) or never end. */
function refuseIrregular(path: string, info: Stats): void {
  if (info.isFile()) return;
  const what = info.isFIFO()
    ? 'a FIFO'
    : info.isDirectory()
      ? 'a directory'
      : info.isSocket()
        ? 'a socket'
        : info.isCharacterDevice() || info.isBlockDevice()
          ? 'a device'
          : 'not a file';
  throw new Error(`${path}: not a regular file (${what}); a membership file must be a regular file (a FIFO or device would block the read)`);
}

/** `{ name: address }` from the file's text; anything else throws (a failed read). Entries are checked by the mesh. */
function parsePeers(bytes: Buffer, path: string): Array<[string, string]> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message}); a file being written is read again once it changes`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${path}: must be a JSON object of node name -> address, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`);
  }
  // values that are not strings go through: the mesh skips them with a warning, as any bad entry
  return Object.entries(value as Record<string, string>);
}
