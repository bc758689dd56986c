/**
 * The errors of the layers below (a SessionError, a ProtocolError, a transport's Error) as the RpcError that every
 * promise of the rpc layer and above rejects with: users meet one error class, with a status that says what to do,
 * and the original kept as `cause` (a ProtocolError's stable `code` included).
 */
import { Status } from '../wire/constants.js';
import { ProtocolError, ProtocolErrorCode } from '../wire/errors.js';
import { AdmissionError, SessionError } from '../session/errors.js';
import { TlsFailure } from '../transport/tls-failures.js';
import { RpcError } from './rpc-error.js';

/**
 * A SessionError keeps its status and retrySafe (the peer refused us: UNAUTHENTICATED, PERMISSION_DENIED); so does our
 * own refusal of the peer (an AdmissionError), and a TlsFailure (UNAUTHENTICATED for a certificate refused); a protocol
 * version mismatch is FAILED_PRECONDITION (retrying will not help: upgrade one side); anything else that ends or
 * refuses a connection is UNAVAILABLE.
 */
export function rpcErrorOf(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof SessionError) return new RpcError(error.status, error.message, { retrySafe: error.retrySafe, cause: error });
  if (error instanceof AdmissionError) return new RpcError(error.status, error.message, { cause: error });
  if (error instanceof TlsFailure) return new RpcError(error.status, error.message, { cause: error });
  if (error instanceof ProtocolError) {
    const status = error.code === ProtocolErrorCode.VERSION_MISMATCH ? Status.FAILED_PRECONDITION : Status.UNAVAILABLE;
    return new RpcError(status, error.message, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new RpcError(Status.UNAVAILABLE, message, { cause: error });
}
