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

/** A method's definition. `Req` and `Res` exist only in the type system. */
export interface MethodDef<Req, Res, Kind extends MethodKind = MethodKind> {
  readonly kind: Kind;
  readonly codec: Codec;
  readonly input: StandardSchemaV1 | undefined;
  readonly output: StandardSchemaV1 | undefined;
  /** Phantom fields that carry the types: never set. Public on purpose: stripped from the .d.ts, they would lose `Req`. */
  readonly __req?: (req: Req) => void;
  readonly __res?: () => Res;
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

/** The factory of one method kind: its types come from type arguments, from Standard Schema validators, or are raw. */
export interface MethodFactory<K extends MethodKind> {
  /** Raw bytes: no codec at all. */
  (options: { codec: 'raw' }): MethodDef<Uint8Array, Uint8Array, K>;
  /** Types from Standard Schema validators (zod, valibot, arktype...). */
  <In extends StandardSchemaV1, Out extends StandardSchemaV1>(
    options: SchemaMethodOptions<In, Out>,
  ): MethodDef<StandardSchemaV1.InferOutput<In>, StandardSchemaV1.InferOutput<Out>, K>;
  <Req = unknown, Res = unknown>(options?: MethodOptions): MethodDef<Req, Res, K>;
}

/** A download's response is bytes, so only its request has a codec and a schema. */
export interface DownloadFactory {
  <In extends StandardSchemaV1>(options: MethodOptions & { input: In }): MethodDef<StandardSchemaV1.InferOutput<In>, Uint8Array, 'download'>;
  <Req = unknown>(options?: MethodOptions): MethodDef<Req, Uint8Array, 'download'>;
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

export type RequestOf<D> = D extends MethodDef<infer Req, infer _Res> ? Req : never;
export type ResponseOf<D> = D extends MethodDef<infer _Req, infer Res> ? Res : never;

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
