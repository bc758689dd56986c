/**
 * The session layer: one connection's handshake, streams, credit, scheduling, ping and teardown.
 * @internal except for the names src/index.ts re-exports.
 */
export { Session, SessionError, type Role, type IncomingStream, type SessionHooks, type OpenStreamInit, type SessionPeer } from './session.js';
export { Stream, type StreamEvents, type StreamTrailer } from './stream.js';
export { resolveSessionOptions, type SessionOptions, type ResolvedSessionOptions } from './options.js';
