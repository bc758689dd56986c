/**
 * `gridwire/opentelemetry`: tracing interceptors for OpenTelemetry, W3C trace context in call metadata. A separate
 * entry point because `@opentelemetry/api` is an optional peer dependency: only applications that import this need it.
 * This file only re-exports.
 *
 * @module gridwire/opentelemetry
 */

/** `clientInterceptors: [traceClientCalls()]`, `serverInterceptors: [traceServerCalls()]`. */
export { traceClientCalls, traceServerCalls, STATUS_CODE_ATTRIBUTE } from '../rpc/interceptors/opentelemetry.js';
export type { TracingOptions } from '../rpc/interceptors/opentelemetry.js';
