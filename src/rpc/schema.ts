/**
 * Runs any Standard Schema validator (zod, valibot, arktype...) and turns its issues into one readable line.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';

export type ValidationResult = { ok: true; value: unknown } | { ok: false; message: string; crashed?: boolean };

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

/**
 * Validates `value` and calls `settle` with the result: synchronously when the validator is synchronous, later when it
 * returns a Promise. Never throws and never rejects: a validator that throws (or rejects) settles with
 * `{ ok: false, crashed: true }`, since it runs on a connection's read path, where an exception must not escape.
 */
export function validateThen(schema: StandardSchemaV1, value: unknown, settle: (result: ValidationResult) => void): void {
  let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
  try {
    result = schema['~standard'].validate(value);
  } catch (error) {
    settle(crashed(error));
    return;
  }
  if (result instanceof Promise) result.then((r) => settle(toResult(r)), (error: unknown) => settle(crashed(error)));
  else settle(toResult(result));
}

function crashed(error: unknown): ValidationResult {
  return { ok: false, crashed: true, message: (error as Error)?.message ?? String(error) };
}

/** validateThen as a promise (never rejects), for paths that already wait: stream readers. */
export function validate(schema: StandardSchemaV1, value: unknown): Promise<ValidationResult> {
  return new Promise((resolve) => validateThen(schema, value, resolve));
}
