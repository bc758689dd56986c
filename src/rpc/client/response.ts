/**
 * The end of a successful client call: the trailer handed to the caller's `onTrailer`, and a single response run
 * through the method's output schema. User code runs here on the connection's read path, so what it throws becomes
 * this call's error, never the connection's.
 */
import { Status } from '../../wire/constants.js';
import type { StreamTrailer } from '../../session/stream.js';
import { RpcError } from '../rpc-error.js';
import { validateThen } from '../schema.js';
import type { MethodDescriptor } from '../service.js';
import type { CallOptions } from './call-options.js';

/**
 * The end of a call that returns one response, once END OK has arrived with it: passes the trailer to `onTrailer`,
 * runs the output schema, then settles. User code here runs on the connection's read path: what it throws fails
 * this call only, never the connection.
 */
export function completeWithResponse(
  descriptor: MethodDescriptor,
  options: CallOptions | undefined,
  trailer: StreamTrailer,
  response: unknown,
  succeed: (value: unknown) => void,
  fail: (error: RpcError) => void,
): void {
  const trailerError = deliverTrailer(options, trailer);
  if (trailerError !== undefined) {
    fail(trailerError);
    return;
  }
  const schema = descriptor.def.output;
  if (schema === undefined) {
    succeed(response);
    return;
  }
  validateThen(schema, response, (result) => {
    if (result.ok) succeed(result.value);
    else fail(invalidResponse(result));
  });
}

/** A response the method's output schema refused (or could not check): the caller's call fails INTERNAL. */
export function invalidResponse(result: { crashed?: boolean; message: string }): RpcError {
  return new RpcError(Status.INTERNAL, result.crashed ? `output validation failed to run: ${result.message}` : `invalid response: ${result.message}`);
}

/** Hands a successful call's trailer to `onTrailer`; what that user code throws comes back as the call's error. */
export function deliverTrailer(options: CallOptions | undefined, trailer: StreamTrailer): RpcError | undefined {
  try {
    options?.onTrailer?.(trailer.metadata);
    return undefined;
  } catch (error) {
    return new RpcError(Status.INTERNAL, `onTrailer threw: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }
}
