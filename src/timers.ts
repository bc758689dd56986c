/**
 * The one bound every timer of gridwire's own limits meets: Node's setTimeout and setInterval fire after ~1 ms for any
 * delay above 2^31-1 ms (~24.8 days; Infinity included), so a limit that long must mean "no timer", not "now". Every
 * layer asks here (like log.ts, a leaf any layer may import).
 */

/** Longest delay setTimeout and setInterval honour. */
export const MAX_TIMER_MS = 0x7fff_ffff;

/** `setTimeout(fire, ms)`, or none when `ms` is beyond MAX_TIMER_MS: a limit that long never runs out. */
export function limitTimer(ms: number, fire: () => void): NodeJS.Timeout | undefined {
  return ms > MAX_TIMER_MS ? undefined : setTimeout(fire, ms);
}
