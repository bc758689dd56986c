// Markdown tables for the printed results: the first `leftColumns` columns are left-aligned (names), the rest
// right-aligned (figures). Pure formatting.

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
