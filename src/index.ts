/**
 * gridwire: daemon-to-daemon RPC for Node.js over one two-way multiplexed connection.
 * This file only re-exports; each name's documentation lives where it is defined.
 *
 * @module gridwire
 */

/** Describe a service once: `defineService('files.v1', { stat: unary<Req, Res>() })`. */
export { defineService, unary, serverStream, clientStream, bidi, upload, download } from './rpc/service.js';
export type {
  ServiceDef,
  MethodDef,
  MethodKind,
  UnaryMethod,
  MethodOptions,
  SchemaMethodOptions,
  MethodFactory,
  DownloadFactory,
  RequestOf,
  ResponseOf,
  RequestInputOf,
  ResponseInputOf,
  MethodMap,
} from './rpc/service.js';
/** Bind handlers to a service definition. */
export { serve } from './rpc/handler.js';
export type { Handlers, HandlerOf, ResponseSource, CallContext } from './rpc/handler.js';
export type { ServiceImpl } from './rpc/server/registry.js';
export type { Client, ClientMethodOf } from './rpc/client/typed-client.js';
export type { RpcSessionOptions } from './rpc/rpc-session.js';
/** Interceptors: `clientInterceptors` wrap the calls a side makes, `serverInterceptors` the calls its services handle. */
export type {
  ClientInterceptor,
  ClientNext,
  OutgoingCall,
  OutgoingMessageCall,
  OutgoingStreamCall,
  OutgoingBidiCall,
  OutgoingUploadCall,
  CallResult,
} from './rpc/client/outgoing-call.js';
export type {
  ServerInterceptor,
  ServerNext,
  IncomingCall,
  IncomingMessageCall,
  IncomingStreamCall,
  IncomingUploadCall,
  HandlerResult,
} from './rpc/server/interceptor.js';
export type { MethodInfo } from './rpc/interceptor.js';
/** Authorization as a server interceptor asking `(ctx) => true | reason` where it sits in the chain (the `authorize` option asks earlier, as each call opens). */
export { authorizeCalls } from './rpc/server/authorize.js';
export type { Authorize } from './rpc/server/authorize.js';
/** Provided interceptors: call logging to a pino-compatible logger, deadline defaults and caps, rate limits, exception recovery. */
export { logClientCalls, logServerCalls } from './rpc/interceptors/logging.js';
export type { LoggingOptions, CallLogLine } from './rpc/interceptors/logging.js';
export type { Logger, LogMethod } from './rpc/interceptors/logger.js';
export { defaultDeadlines, capHandlerTime } from './rpc/interceptors/deadlines.js';
export { rateLimitCalls } from './rpc/interceptors/rate-limit.js';
export type { RateLimit, RateLimitOptions } from './rpc/interceptors/rate-limit.js';
export { recoverExceptions } from './rpc/interceptors/recover.js';
export type { RecoveryOptions } from './rpc/interceptors/recover.js';
export type { MethodTable } from './rpc/interceptors/method-table.js';
/** Token authentication in the handshake (the `auth` option). */
export type { AuthOptions } from './rpc/auth.js';
export type { HandlerContext } from './rpc/server/context.js';
/** Streams: responses and requests are read with `for await`; bulk bodies are chunks of bytes. */
export type { MessageStream, ByteStream } from './rpc/inbox.js';
export type { BidiCall } from './rpc/client/bidi-call.js';
export type { ByteSource } from './rpc/sender.js';
/** A connection with services on both sides: `session.client(Service)`, `ping()`, `close()`. */
export { RpcSession } from './rpc/rpc-session.js';
/** Accept connections, dial one, or run a session over any Transport. */
export { listen, connect } from './endpoint/endpoints.js';
/** Share the port of an application's own http or https server: its WebSocket upgrades for one path become sessions. */
export { attach } from './endpoint/attach.js';
export type { AttachOptions } from './endpoint/attach.js';
/** Connections that stay up: a channel redials one address; a mesh keeps one connection per pair of named nodes. */
export { channel, Channel } from './channel/channel.js';
export type { ChannelOptions } from './channel/channel.js';
export type { ReconnectOptions } from './channel/backoff.js';
export type { LinkState, LinkStateEvent } from './channel/link.js';
export type { LogFn, LogLevel } from './log.js';
export { Mesh, dialsTo } from './mesh/mesh.js';
export { MeshPeer } from './mesh/mesh-peer.js';
export type { MeshOptions, MeshTlsOptions, PeerState, PeerStateEvent } from './mesh/mesh.js';
/** A mesh's peers from the user's source of truth (MeshOptions.membership): DNS A / AAAA or SRV records, a watched file. */
export { dnsMembership, DnsMembership } from './mesh/membership/dns-membership.js';
export type { DnsMembershipOptions, DnsPeerRecord } from './mesh/membership/dns-membership.js';
export { fileMembership, FileMembership } from './mesh/membership/file-membership.js';
export type { FileMembershipOptions } from './mesh/membership/file-membership.js';
export type { MembershipSource, MembershipSink, MembershipChange, MembershipSourceOptions } from './mesh/membership/membership.js';
export { createSession } from './rpc/rpc-session.js';
export type { ListenOptions, ConnectOptions, Server } from './endpoint/endpoints.js';
export type { CallOptions } from './rpc/client/call-options.js';
/** What `session.stats()`, `server.stats()`, `channel.stats()` and `mesh.stats()` return: plain, JSON-able objects. */
export type { SessionStats, CreditStallStats } from './rpc/session-stats.js';
export type { CallStats, CallCounts, CallDirection } from './rpc/call-stats.js';
export type { ServerStats, ConnectionStats } from './endpoint/server-stats.js';
export type { MeshStats, PeerStats } from './mesh/mesh-stats.js';
/** Live introspection (the `inspect` option): the built-in service `gridwire inspect` calls, and what it answers. */
export { InspectService } from './rpc/inspect/inspect-service.js';
export type { InspectOption } from './rpc/inspect/inspect-service.js';
export type { InspectSnapshot, InspectConnection, InspectStream, InspectStall, StallSide } from './rpc/inspect/inspect-snapshot.js';
/** The error every failed call rejects with, and its gRPC-style codes. */
export { RpcError } from './rpc/rpc-error.js';
export type { RpcErrorOptions } from './rpc/rpc-error.js';
export { Status, statusName } from './wire/constants.js';
/** Message codecs: msgpack (default), json, raw. */
export { msgpackCodec, jsonCodec, rawCodec } from './rpc/codec.js';
export type { Codec, CodecName } from './rpc/codec.js';
/** A msgpack codec with its own decode budget (`maxElements`, `maxDepth`), for a method whose messages need more. */
export { createMsgpackCodec } from './rpc/codec.js';
export type { MsgpackCodecOptions } from './rpc/codec.js';
export type { Metadata } from './wire/metadata.js';
export type { SessionOptions } from './session/options.js';
/** A memory budget shared by the sessions given it (the `memoryBudget` option; one per process by default). */
export { MemoryBudget } from './session/memory-budget.js';
export type { PeerHello, Refusal, SessionPeer } from './session/handshake.js';
export type { HelloSettings } from './wire/hello.js';
export type { Role } from './session/role.js';
/** Protocol errors that close a connection, with stable string codes. */
export { ProtocolError, ProtocolErrorCode } from './wire/errors.js';
/** Why a connection ended, as its GOAWAY carries it (`ProtocolError.connectionCode`). */
export { ConnectionCode } from './wire/constants.js';
/** Transports: the duplex interface and an in-memory pair for tests. */
export type { Transport, TransportSink, PeerInfo, PeerIdentity } from './transport/transport.js';
export type { TlsListenOptions, TlsConnectOptions } from './transport/tls.js';
export { createMemoryPair } from './transport/memory.js';
export type { MemoryTransport } from './transport/memory.js';
