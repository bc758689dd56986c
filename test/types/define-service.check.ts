/**
 * Compile-only checks that defineService infers request and response types on both sides (run by `tsc --noEmit`
 * in `npm test`; never executed). A failing expectation is a type error.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import {
  bidi,
  clientStream,
  defineService,
  download,
  serve,
  serverStream,
  unary,
  upload,
  type BidiCall,
  type ByteSource,
  type ByteStream,
  type Client,
  type MessageStream,
  type RequestOf,
  type ResponseOf,
} from '../../src/index.js';

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

// streaming kinds: handlers and clients get the shape of their kind
const Streams = defineService('streams.v1', {
  tail: serverStream<{ n: number }, { i: number }>(),
  sum: clientStream<number, number>(),
  chat: bidi<string, string>(),
  put: upload<{ name: string }, { bytes: number }>(),
  get: download<{ name: string }>(),
});
type StreamsClient = Client<(typeof Streams)['methods']>;
export type T7 = Expect<Equal<ReturnType<StreamsClient['tail']>, MessageStream<{ i: number }>>>;
export type T8 = Expect<Equal<Parameters<StreamsClient['sum']>[0], Iterable<number> | AsyncIterable<number>>>;
export type T9 = Expect<Equal<ReturnType<StreamsClient['chat']>, BidiCall<string, string>>>;
export type T10 = Expect<Equal<Parameters<StreamsClient['put']>[1], ByteSource>>;
export type T11 = Expect<Equal<ReturnType<StreamsClient['get']>, ByteStream>>;

serve(Streams, {
  async *tail({ n }) {
    for (let i = 0; i < n; i++) yield { i };
  },
  async sum(requests) {
    let total = 0;
    for await (const x of requests) total += x;
    return total;
  },
  chat: (requests) => (async function* () {
    for await (const m of requests) yield m.toUpperCase();
  })(),
  async put(req, body) {
    let bytes = 0;
    for await (const chunk of body) bytes += chunk.length;
    return { bytes: bytes + req.name.length };
  },
  get: () => new Uint8Array(3),
});

serve(Streams, {
  // @ts-expect-error a serverStream handler yields { i: number }
  async *tail() {
    yield { i: 'one' };
  },
  sum: () => 1,
  chat: () => [],
  put: () => ({ bytes: 0 }),
  // @ts-expect-error a download handler returns bytes
  get: () => 'text',
});
