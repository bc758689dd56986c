/**
 * Services described once, in TypeScript, with no code generation: `defineService(name, { method: unary<Req, Res>() })`
 * gives both the client's and the handler's types. A method's wire name is `service/method`, matched exactly (no
 * case folding or slash normalisation), so routing and any authorisation see one canonical string.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { MAX_METHOD_BYTES } from '../wire/constants.js';
import { utf8 } from '../wire/bytes.js';
import { resolveCodec, type Codec, type CodecName } from './codec.js';

/**
 * How a method's call is shaped. Message kinds send encoded messages; `upload` sends one request message and then
 * raw bytes caller to handler, `download` one request message and then raw bytes handler to caller. Raw bytes never
 * pass through a codec.
 */
export type MethodKind = 'unary' | 'serverStream' | 'clientStream' | 'bidi' | 'upload' | 'download';

/**
 * A method's definition; the type parameters exist only in the type system. With a Standard Schema validator a value's
 * type differs on the two sides of the validator (a zod `.default()` or `.transform()`, a valibot `optional(x, 10)`):
 * - `Req`: what the caller sends (the input schema's input type);
 * - `Res`: what the caller receives (the output schema's output type);
 * - `HandlerReq`: what the handler receives (the input schema's output type);
 * - `HandlerRes`: what the handler returns (the output schema's input type).
 * Without a schema both sides see the same types.
 */
export interface MethodDef<Req, Res, Kind extends MethodKind = MethodKind, HandlerReq = Req, HandlerRes = Res> {
  readonly kind: Kind;
  readonly codec: Codec;
  readonly input: StandardSchemaV1 | undefined;
  readonly output: StandardSchemaV1 | undefined;
  /**
   * Phantom fields that carry the types: never set. All four stay in the published .d.ts on purpose: RequestOf and
   * friends infer from them, so a stripped one types that side as `never` for users (test/types/published-dts.test.ts).
   * No stripping tag may appear in their comments, not even quoted: tsc strips on the bare word.
   */
  readonly __req?: (req: Req) => void;
  readonly __res?: () => Res;
  /** Covariant, so `unary<Req, never>()` still fits a MethodMap. */
  readonly __handlerReq?: () => HandlerReq;
  readonly __handlerRes?: () => HandlerRes;
}

export type UnaryMethod<Req, Res> = MethodDef<Req, Res, 'unary'>;

export interface MethodOptions {
  /** How messages are encoded: 'msgpack' (default), 'json', 'raw' (Uint8Array in and out) or a Codec. */
  codec?: CodecName | Codec;
}

export interface SchemaMethodOptions<In extends StandardSchemaV1, Out extends StandardSchemaV1> extends MethodOptions {
  /** Validates each request on the server before the handler sees it; failures are INVALID_ARGUMENT. */
  input: In;
  /** Validates each response on the client; failures are INTERNAL. */
  output: Out;
}

/** The type a Standard Schema validator accepts. Not exported: a shorthand (typedoc.json lists it as intentionally so). */
type InputOf<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;
/** The type a Standard Schema validator produces. Not exported: a shorthand, as InputOf. */
type OutputOf<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;

/**
 * The factory of one method kind: its types come from type arguments, from Standard Schema validators, or are raw.
 * With validators the caller sends the input schema's input type and the handler receives its output type (and the
 * handler returns the output schema's input type, the caller receives its output type). Without type arguments or
 * validators a method takes and returns `unknown`.
 */
export interface MethodFactory<K extends MethodKind> {
  /** Raw bytes: no codec at all. */
  (options: { codec: 'raw' }): MethodDef<Uint8Array, Uint8Array, K>;
  /** Types from Standard Schema validators (zod, valibot, arktype...). */
  <In extends StandardSchemaV1, Out extends StandardSchemaV1>(
    options: SchemaMethodOptions<In, Out>,
  ): MethodDef<InputOf<In>, OutputOf<Out>, K, OutputOf<In>, InputOf<Out>>;
  /** Requests validated, responses `unknown`. */
  <In extends StandardSchemaV1>(options: MethodOptions & { input: In; output?: undefined }): MethodDef<InputOf<In>, unknown, K, OutputOf<In>, unknown>;
  /** Responses validated, requests `unknown`. */
  <Out extends StandardSchemaV1>(options: MethodOptions & { input?: undefined; output: Out }): MethodDef<unknown, OutputOf<Out>, K, unknown, InputOf<Out>>;
  /**
   * Types from type arguments; `unknown` without them. NoInfer: inside defineService the expected type is a MethodMap
   * entry, whose `any` would otherwise be inferred for missing type arguments.
   */
  <Req = unknown, Res = unknown>(options?: MethodOptions): MethodDef<NoInfer<Req>, NoInfer<Res>, K>;
}

/** A download's response is bytes, so only its request has a codec and a schema. */
export interface DownloadFactory {
  <In extends StandardSchemaV1>(options: MethodOptions & { input: In }): MethodDef<InputOf<In>, Uint8Array, 'download', OutputOf<In>>;
  <Req = unknown>(options?: MethodOptions): MethodDef<NoInfer<Req>, Uint8Array, 'download'>;
}

function factory<K extends MethodKind>(kind: K) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the factory interfaces give the precise types
  return (options: MethodOptions & { input?: StandardSchemaV1; output?: StandardSchemaV1 } = {}): MethodDef<any, any, K> => ({
    kind,
    codec: resolveCodec(options.codec),
    input: options.input,
    output: options.output,
  });
}

/** One request, one response. */
export const unary: MethodFactory<'unary'> = factory('unary');
/** One request; the handler yields any number of responses. */
export const serverStream: MethodFactory<'serverStream'> = factory('serverStream');
/** The caller sends any number of requests; the handler returns one response. */
export const clientStream: MethodFactory<'clientStream'> = factory('clientStream');
/** Both sides send any number of messages, independently. */
export const bidi: MethodFactory<'bidi'> = factory('bidi');
/** One request message, then raw bytes from caller to handler; the handler returns one response. */
export const upload: MethodFactory<'upload'> = factory('upload');
/** One request message; the handler answers with raw bytes. */
export const download: DownloadFactory = factory('download');

/** A service's methods by name, as `defineService` takes them: the constraint of `ServiceDef` and `Client`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the element types are recovered per key below
export type MethodMap = Record<string, MethodDef<any, any>>;

/** The runtime facts about one method, computed once at definition. Internal (not exported by index.ts), yet kept in the .d.ts: the call code's declarations name it. */
export interface MethodDescriptor {
  readonly name: string;
  readonly path: string;
  readonly pathBytes: Uint8Array;
  readonly def: MethodDef<unknown, unknown>;
}

export interface ServiceDef<M extends MethodMap = MethodMap> {
  readonly name: string;
  readonly methods: M;
  /** @internal */
  readonly descriptors: ReadonlyMap<string, MethodDescriptor>;
}

/** What a method's handler receives: the request after validation (the input schema's output type). */
export type RequestOf<D> = D extends { readonly __handlerReq?: () => infer Req } ? Req : never;
/** What a method's caller receives: the response after validation (the output schema's output type). */
export type ResponseOf<D> = D extends { readonly __res?: () => infer Res } ? Res : never;
/** What a method's caller sends: the request before validation (the input schema's input type). */
export type RequestInputOf<D> = D extends { readonly __req?: (req: infer Req) => void } ? Req : never;
/** What a method's handler returns: the response before validation (the output schema's input type). */
export type ResponseInputOf<D> = D extends { readonly __handlerRes?: () => infer Res } ? Res : never;

const SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function defineService<const M extends MethodMap>(name: string, methods: M): ServiceDef<M> {
  if (!SERVICE_NAME.test(name)) {
    throw new TypeError(`service name ${JSON.stringify(name)} is invalid: use dotted identifiers such as 'files.v1'`);
  }
  const descriptors = new Map<string, MethodDescriptor>();
  for (const [methodName, def] of Object.entries(methods)) {
    if (!METHOD_NAME.test(methodName)) {
      throw new TypeError(`method name ${JSON.stringify(methodName)} in ${name} is invalid: use an identifier`);
    }
    const path = `${name}/${methodName}`;
    const pathBytes = utf8(path);
    if (pathBytes.length > MAX_METHOD_BYTES) throw new TypeError(`method path ${path} is longer than ${MAX_METHOD_BYTES} bytes`);
    descriptors.set(methodName, { name: methodName, path, pathBytes, def });
  }
  return { name, methods, descriptors };
}
