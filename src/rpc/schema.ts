/**
 * Runs any Standard Schema validator (zod, valibot, arktype...) and turns its issues into one readable line.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';

export type ValidationResult = { ok: true; value: unknown } | { ok: false; message: string };

function summarize(issues: ReadonlyArray<StandardSchemaV1.Issue>): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = issue.path?.map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ') + (issues.length > 5 ? `; and ${issues.length - 5} more` : '');
}

function toResult(result: StandardSchemaV1.Result<unknown>): ValidationResult {
  return result.issues ? { ok: false, message: summarize(result.issues) } : { ok: true, value: result.value };
}

/** Synchronous when the validator is; a Promise otherwise. */
export function validate(schema: StandardSchemaV1, value: unknown): ValidationResult | Promise<ValidationResult> {
  const result = schema['~standard'].validate(value);
  return result instanceof Promise ? result.then(toResult) : toResult(result);
}
