/**
 * How the commands show numbers and tables to a human: one byte formatter and one table layout for the demo's report
 * and `gridwire inspect`'s snapshot (each keeps the precision it was written with, see `formatBytes`).
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/**
 * `bytes` in the largest binary unit it reaches. `fixed` (the demo's report): GiB and above with two decimals, KiB and
 * MiB with one ("1.00 GiB", "409.0 MiB"). `compact` (inspect's columns): one decimal below 10, none above ("64 KiB").
 */
export function formatBytes(bytes: number, style: 'fixed' | 'compact' = 'fixed'): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  const digits = style === 'compact' ? (value < 10 ? 1 : 0) : unit >= 3 ? 2 : 1;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/**
 * Rows of cells as lines, each column as wide as its widest cell, two spaces apart, after `indent`; the first
 * `leftColumns` columns are aligned left, the rest (numbers) right.
 */
export function table(rows: readonly (readonly string[])[], options: { indent?: string; leftColumns?: number } = {}): string[] {
  const { indent = '', leftColumns = Infinity } = options;
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => (indent + row.map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')).trimEnd());
}
