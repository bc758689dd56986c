/**
 * Compile-only checks (run by `tsc --noEmit`; never executed) that a validated method is typed on each side of its
 * validators: the caller sends the input schema's input type and receives the output schema's output type; the
 * handler receives the input schema's output type and returns the output schema's input type. A schema with a default
 * or a transform used to type the caller's request with the schema's output, so it could not be called without casts.
 * Without type arguments or validators a method is `unknown` in and out, never `any`.
 */
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
  type Client,
  type Handlers,
  type MessageStream,
  type RequestInputOf,
  type RequestOf,
  type ResponseInputOf,
  type ResponseOf,
  type ResponseSource,
} from '../../src/index.js';
import { labelled, limitWithDefault, numberFromString } from '../fixtures/transforming-schemas.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
type Awaitable<T> = T | Promise<T>;
type Label = { n: number; label: string };

const Search = defineService('search.v1', {
  find: unary({ input: limitWithDefault, output: labelled }),
  onlyInput: unary({ input: numberFromString }),
  onlyOutput: unary({ output: labelled }),
  untyped: unary(),
  tail: serverStream({ input: limitWithDefault, output: labelled }),
  sum: clientStream({ input: numberFromString, output: labelled }),
  chat: bidi({ input: numberFromString, output: labelled }),
  put: upload({ input: limitWithDefault, output: labelled }),
  get: download({ input: numberFromString }),
});
type M = (typeof Search)['methods'];
type C = Client<M>;
type H = Handlers<M>;

// the four sides of one method
export type S1 = Expect<Equal<RequestInputOf<M['find']>, { limit?: number }>>;
export type S2 = Expect<Equal<RequestOf<M['find']>, { limit: number }>>;
export type S3 = Expect<Equal<ResponseInputOf<M['find']>, number>>;
export type S4 = Expect<Equal<ResponseOf<M['find']>, Label>>;

// unary: the caller sends the input's input and gets the output's output; the handler the other way round
export type S5 = Expect<Equal<Parameters<C['find']>[0], { limit?: number }>>;
export type S6 = Expect<Equal<Awaited<ReturnType<C['find']>>, Label>>;
export type S7 = Expect<Equal<Parameters<H['find']>[0], { limit: number }>>;
export type S8 = Expect<Equal<ReturnType<H['find']>, Awaitable<number>>>;

// one schema alone: the other side is unknown
export type S9 = Expect<Equal<Parameters<C['onlyInput']>[0], string>>;
export type S10 = Expect<Equal<Parameters<H['onlyInput']>[0], number>>;
export type S11 = Expect<Equal<Awaited<ReturnType<C['onlyInput']>>, unknown>>;
export type S12 = Expect<Equal<Parameters<C['onlyOutput']>[0], unknown>>;
export type S13 = Expect<Equal<Awaited<ReturnType<C['onlyOutput']>>, Label>>;
export type S14 = Expect<Equal<ReturnType<H['onlyOutput']>, Awaitable<number>>>;

// no type arguments, no schema: unknown in and out on both sides, not any
export type S15 = Expect<Equal<Parameters<C['untyped']>[0], unknown>>;
export type S16 = Expect<Equal<Awaited<ReturnType<C['untyped']>>, unknown>>;
export type S17 = Expect<Equal<Parameters<H['untyped']>[0], unknown>>;
export type S18 = Expect<Equal<ReturnType<H['untyped']>, Awaitable<unknown>>>;

// every streaming and bulk kind
export type S19 = Expect<Equal<Parameters<C['tail']>[0], { limit?: number }>>;
export type S20 = Expect<Equal<ReturnType<C['tail']>, MessageStream<Label>>>;
export type S21 = Expect<Equal<Parameters<H['tail']>[0], { limit: number }>>;
export type S22 = Expect<Equal<ReturnType<H['tail']>, Awaitable<ResponseSource<number>>>>;
export type S23 = Expect<Equal<Parameters<C['sum']>[0], Iterable<string> | AsyncIterable<string>>>;
export type S24 = Expect<Equal<Parameters<H['sum']>[0], MessageStream<number>>>;
export type S25 = Expect<Equal<ReturnType<C['chat']>, BidiCall<string, Label>>>;
export type S26 = Expect<Equal<Parameters<H['chat']>[0], MessageStream<number>>>;
export type S27 = Expect<Equal<ReturnType<H['chat']>, Awaitable<ResponseSource<number>>>>;
export type S28 = Expect<Equal<Parameters<C['put']>[0], { limit?: number }>>;
export type S29 = Expect<Equal<Parameters<H['put']>[0], { limit: number }>>;
export type S30 = Expect<Equal<Parameters<C['get']>[0], string>>;
export type S31 = Expect<Equal<Parameters<H['get']>[0], number>>;

declare const client: C;
void client.find({}); // the default fills the limit in
void client.find({ limit: 5 });
// @ts-expect-error the caller sends the input type: a limit is a number
void client.find({ limit: '5' });
void client.onlyInput('42');
// @ts-expect-error the caller sends the schema's input (a string), not what the handler gets
void client.onlyInput(42);
// @ts-expect-error what the caller gets back is the output schema's output, not its input
export const wrong: Promise<number> = client.find({});

serve(Search, {
  find: (request) => request.limit * 2, // the handler's limit is never undefined
  onlyInput: (n) => n.toFixed(0),
  onlyOutput: () => 1,
  untyped: (anything) => anything,
  async *tail({ limit }) {
    for (let i = 0; i < limit; i++) yield i;
  },
  async sum(numbers) {
    let total = 0;
    for await (const n of numbers) total += n;
    return total;
  },
  chat: (numbers) => numbers,
  put: async ({ limit }, body) => {
    let bytes = 0;
    for await (const chunk of body) bytes += chunk.length;
    return Math.min(bytes, limit);
  },
  get: (n) => new Uint8Array(n),
});

serve(Search, {
  // @ts-expect-error the handler returns the output schema's input (a number), which the caller's side validates
  find: () => ({ n: 1, label: '#1' }),
  // @ts-expect-error the handler gets the input schema's output (a number), not the string the caller sent
  onlyInput: (text: string) => text,
  onlyOutput: () => 1,
  // @ts-expect-error an untyped method's request is unknown, not any
  untyped: (request) => request.anything,
  // @ts-expect-error a serverStream handler yields the output schema's input
  async *tail() {
    yield { n: 1, label: '#1' };
  },
  sum: () => 0,
  chat: () => [],
  put: () => 0,
  get: () => new Uint8Array(0),
});
