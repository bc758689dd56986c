/**
 * The fuzz targets by name: what `npm run fuzz` runs with random seeds, the fuzz tests with fixed ones, and the
 * corpus replay test against every file of test/corpus/<name>/.
 */
import { decoderTarget } from './decoder-target.js';
import type { FuzzTarget, TargetName } from './harness.js';
import { msgpackTarget } from './msgpack-target.js';
import { payloadsTarget } from './payloads-target.js';
import { sessionTarget } from './session-target.js';

export const TARGETS: Readonly<Record<TargetName, FuzzTarget>> = {
  decoder: decoderTarget,
  payloads: payloadsTarget,
  msgpack: msgpackTarget,
  session: sessionTarget,
};

export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[];

export function isTargetName(name: string): name is TargetName {
  return Object.hasOwn(TARGETS, name);
}
