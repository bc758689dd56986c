/**
 * OpenTelemetry tracing, one interceptor per side, with W3C trace context carried in call metadata. The only module
 * that imports `@opentelemetry/api` (an optional peer dependency): it is reached through `gridwire/opentelemetry`
 * (src/observe/opentelemetry.ts), never from src/index.ts, so `import 'gridwire'` works without the package.
 *
 * Everything OpenTelemetry already does is left to it: the context is injected and extracted by the globally
 * registered propagator (`propagation.inject` / `extract`; register W3CTraceContextPropagator, or let the SDK do it),
 * spans come from the tracer provider (the global one unless given), and the handler runs inside its span's context, so
 * calls it makes (with the client interceptor) continue the trace when a context manager is registered.
 *
 * Spans: the client starts a CLIENT span `service/method`, the server a SERVER span of the same name, the child of the
 * context the caller sent. Attributes `rpc.system` = `gridwire`, `rpc.service`, `rpc.method`, and once the call ends
 * `rpc.gridwire.status_code` (the numeric status, 0 for OK). A call that fails sets the span's status to ERROR with the
 * status name and message. Streams, downloads and bidi calls end their span when the call ends (call-end.ts).
 */
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { statusName } from '../../wire/constants.js';
import type { Metadata } from '../../wire/metadata.js';
import type { ClientInterceptor } from '../client/outgoing-call.js';
import type { MethodInfo } from '../interceptor.js';
import type { RpcError } from '../rpc-error.js';
import type { ServerInterceptor } from '../server/interceptor.js';
import { observeClientCall, observeServerCall } from './call-end.js';

export interface TracingOptions {
  /** Where spans come from: a tracer, or a provider to get one from (default: the global provider's `gridwire` tracer). */
  tracer?: Tracer;
  tracerProvider?: TracerProvider;
}

/** The attribute that carries a call's status code when its span ends. */
export const STATUS_CODE_ATTRIBUTE = 'rpc.gridwire.status_code';

/** Metadata as a propagation carrier: string values only (a binary entry is never trace context). */
const metadataGetter: TextMapGetter<Metadata> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};
const metadataSetter: TextMapSetter<Metadata> = {
  set: (carrier, key, value) => {
    carrier[key.toLowerCase()] = value;
  },
};

function tracerOf(options: TracingOptions): Tracer {
  if (options.tracer !== undefined) return options.tracer;
  return (options.tracerProvider ?? trace.getTracerProvider()).getTracer('gridwire');
}

function spanOptions(method: MethodInfo, kind: SpanKind) {
  return { kind, attributes: { 'rpc.system': 'gridwire', 'rpc.service': method.service, 'rpc.method': method.name } };
}

function endSpan(span: Span, error: RpcError | undefined): void {
  span.setAttribute(STATUS_CODE_ATTRIBUTE, error === undefined ? 0 : error.code);
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: `${statusName(error.code)}: ${error.rawMessage}` });
  span.end();
}

/**
 * A client interceptor: a CLIENT span per call, the child of the active context, its trace context injected into the
 * call's metadata (`traceparent`, `tracestate`: what the propagator writes). Place it last in `clientInterceptors` to
 * time the call alone, first to time the other interceptors' work too.
 */
export function traceClientCalls(options: TracingOptions = {}): ClientInterceptor {
  const tracer = tracerOf(options);
  return (next) => (call) => {
    const parent = context.active();
    const span = tracer.startSpan(call.method.path, spanOptions(call.method, SpanKind.CLIENT), parent);
    const active = trace.setSpan(parent, span);
    propagation.inject(active, call.metadata, metadataSetter);
    return context.with(active, () => observeClientCall(call, next, (error) => endSpan(span, error), false));
  };
}

/**
 * A server interceptor: a SERVER span per call, the child of the trace context the caller sent in its metadata (a
 * new trace when it sent none), with the rest of the chain and the handler run inside it.
 */
export function traceServerCalls(options: TracingOptions = {}): ServerInterceptor {
  const tracer = tracerOf(options);
  return (next) => (call) => {
    const parent = propagation.extract(context.active(), call.ctx.metadata, metadataGetter);
    const span = tracer.startSpan(call.method.path, spanOptions(call.method, SpanKind.SERVER), parent);
    return context.with(trace.setSpan(parent, span), () => observeServerCall(call, next, (error) => endSpan(span, error), false));
  };
}
