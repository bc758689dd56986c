/**
 * Live introspection, the `inspect` option: its value, and the built-in service `gridwire.inspect.v1` a side that
 * enables it serves (its one method `snapshot` answers inspect-snapshot.ts's look at the connections); what serving it
 * and watching for stalls takes is inspect-serving.ts's. Off by default.
 */
import { defineService, unary } from '../service.js';
import type { InspectSnapshot } from './inspect-snapshot.js';

/** The `inspect` option: `true`, or the threshold past which a stream blocked on credit is stalled. */
export type InspectOption = boolean | { stallThresholdMs?: number };

/** How long a stream may wait for credit before the stall watch names it, unless `stallThresholdMs` says otherwise. */
export const DEFAULT_STALL_THRESHOLD_MS = 5_000;

/** The built-in service a side with `inspect` on serves. JSON, so any client (and jq) reads the snapshot. */
export const InspectService = defineService('gridwire.inspect.v1', {
  /** A look at the connections of the node: see InspectSnapshot. */
  snapshot: unary<Record<string, never>, InspectSnapshot>({ codec: 'json' }),
});

/**
 * @internal The stall threshold of an `inspect` option (undefined: inspect is off). Throws a TypeError or RangeError
 * for a bad one: called where options are first checked.
 */
export function stallThresholdOf(option: unknown): number | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return DEFAULT_STALL_THRESHOLD_MS;
  if (typeof option !== 'object' || option === null) throw new TypeError(`inspect must be true, false or { stallThresholdMs }, got ${typeof option}`);
  const ms = (option as { stallThresholdMs?: unknown }).stallThresholdMs;
  if (ms === undefined) return DEFAULT_STALL_THRESHOLD_MS;
  if (typeof ms !== 'number' || !(ms >= 1 && ms <= 3_600_000)) {
    throw new RangeError(`inspect.stallThresholdMs must be a number of ms in 1..3600000, got ${typeof ms === 'number' ? ms : typeof ms}`);
  }
  return ms;
}
