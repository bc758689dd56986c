/**
 * Compile-only checks that defineService infers request and response types on both sides (run by `tsc --noEmit`
 * in `npm test`; never executed). A failing expectation is a type error.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defineService, serve, unary, type Client, type RequestOf, type ResponseOf } from '../src/index.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

const Files = defineService('files.v1', {
  stat: unary<{ path: string }, { size: number }>(),
  raw: unary({ codec: 'raw' }),
});

type StatClient = Client<(typeof Files)['methods']>['stat'];
export type T1 = Expect<Equal<Parameters<StatClient>[0], { path: string }>>;
export type T2 = Expect<Equal<Awaited<ReturnType<StatClient>>, { size: number }>>;
export type T3 = Expect<Equal<RequestOf<(typeof Files)['methods']['raw']>, Uint8Array>>;
export type T4 = Expect<Equal<ResponseOf<(typeof Files)['methods']['raw']>, Uint8Array>>;

// types inferred from Standard Schema validators
declare const pathSchema: StandardSchemaV1<unknown, { path: string }>;
declare const sizeSchema: StandardSchemaV1<unknown, { size: number }>;
export const Checked = defineService('checked.v1', { stat: unary({ input: pathSchema, output: sizeSchema }) });
export type T5 = Expect<Equal<RequestOf<(typeof Checked)['methods']['stat']>, { path: string }>>;
export type T6 = Expect<Equal<ResponseOf<(typeof Checked)['methods']['stat']>, { size: number }>>;

serve(Files, {
  stat: (req) => ({ size: req.path.length }),
  raw: async (bytes) => bytes.subarray(1),
});

serve(Files, {
  // @ts-expect-error the handler must return { size: number }
  stat: () => ({ size: 'big' }),
  raw: (bytes) => bytes,
});

// @ts-expect-error every method needs a handler
serve(Files, { stat: () => ({ size: 1 }) });
