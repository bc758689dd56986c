// How the suites print and judge what they measured: markdown tables, figures, and checks (a median over runs,
// often of a same-run ratio, against a target or shown without one). Pure formatting and arithmetic.
import { median } from './stats.js';

export function markdownTable(head: readonly string[], body: readonly string[][], leftColumns: number): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    '| ' +
    cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ') +
    ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...body.map(line)].join('\n');
}

/** A figure with `digits` decimals, or '-' when it is not a finite number (not measured, or failed). */
export const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

// ---- checks ----

/** The unit of a check's figure; 'x' is a ratio of two figures taken within the same run. */
export type Unit = 'x' | 'ms' | 'MiB' | 'KiB' | 'µs';
const DIGITS: Record<Unit, number> = { x: 2, ms: 0, MiB: 1, KiB: 2, µs: 1 };

export interface Check {
  /** The median of the finite per-run values; null when no run measured it. */
  value: number | null;
  unit: Unit;
  perRun: number[];
  /** What the value must reach ('>=') or stay under ('<=', '<'); null: shown without a target. */
  target: { sense: '>=' | '<=' | '<'; value: number } | null;
  met: boolean | null;
}

export function check(perRun: readonly number[], unit: Unit, target: Check['target'] = null): Check {
  const finite = perRun.filter(Number.isFinite);
  const value = finite.length ? median(finite) : null;
  let met: boolean | null = null;
  if (value !== null && target !== null && Number.isFinite(target.value)) {
    met = target.sense === '>=' ? value >= target.value : target.sense === '<=' ? value <= target.value : value < target.value;
  }
  return { value, unit, perRun: finite, target, met };
}

/** One line per check: name, value, target and verdict, and the per-run values when there are several. */
export function formatChecks(checks: Record<string, Check>): string {
  if (Object.keys(checks).length === 0) return '  none: the rows they compare did not run';
  const width = Math.max(...Object.keys(checks).map((k) => k.length));
  const show = (v: number, unit: Unit): string => `${fmt(v, DIGITS[unit])}${unit === 'x' ? 'x' : ` ${unit}`}`;
  return Object.entries(checks)
    .map(([key, c]) => {
      const value = c.value === null ? 'not measured' : show(c.value, c.unit);
      const target = c.target === null ? '' : `  target ${c.target.sense} ${show(c.target.value, c.unit)}`;
      const verdict = c.met === null ? '' : c.met ? '  MET' : '  NOT MET';
      const runs = c.perRun.length > 1 ? `  (per run: ${c.perRun.map((x) => fmt(x, DIGITS[c.unit])).join(', ')})` : '';
      return `  ${key.padEnd(width)} ${value.padStart(12)}${target}${verdict}${runs}`;
    })
    .join('\n');
}
