//! Tracing through `@opentelemetry/api`: a span per call and per tier operation, W3C trace context
//! taken from incoming metadata and forwarded down a chain (A → B → C is one trace). Spans are
//! exported over OTLP only when the operator sets the standard OTEL_EXPORTER_OTLP_* variables;
//! otherwise the API's no-op tracer costs next to nothing.

import * as grpc from "@grpc/grpc-js";
import {
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from "@opentelemetry/api";

const tracer = trace.getTracer("tierkv");

/** A span that records nothing, for calls made while no tracer provider is registered. */
const NOT_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether a tracer provider is registered (by `startTracing`, or a test). Without one every span
 * is a no-op, yet extracting the caller's context and starting a span still cost a few µs per
 * call: server calls skip both.
 */
function tracerRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer("tierkv") !== undefined;
}

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: (metadata) => Object.keys(metadata.getMap()),
  get: (metadata, key) => {
    const [value] = metadata.get(key);
    return typeof value === "string" ? value : undefined;
  },
};

const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

function endSpan(span: Span, error: unknown): void {
  if (error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? "error" });
  }
  span.end();
}

/** Runs a server call's handler in a span whose parent is the caller's trace context, if any. */
export async function inServerSpan<T>(name: string, metadata: grpc.Metadata, run: (span: Span) => Promise<T>): Promise<T> {
  if (!tracerRegistered()) return run(NOT_RECORDING);
  const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
  return tracer.startActiveSpan(name, { kind: SpanKind.SERVER, attributes: { "rpc.system": "grpc" } }, parent, async (span) => {
    try {
      const result = await run(span);
      endSpan(span, undefined);
      return result;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  });
}

/** Runs one tier operation in a child span of the current one. */
export async function inTierSpan<T>(tier: string, run: () => Promise<T>): Promise<T> {
  if (trace.getActiveSpan() === undefined) return run();
  return tracer.startActiveSpan(`tier ${tier}`, { kind: SpanKind.INTERNAL, attributes: { "tierkv.tier": tier } }, async (span) => {
    try {
      const result = await run();
      endSpan(span, undefined);
      return result;
    } catch (error) {
      endSpan(span, error);
      throw error;
    }
  });
}

/** `metadata` with the current trace context added (a copy), or `metadata` itself outside any trace. */
export function withTraceContext(metadata: grpc.Metadata): grpc.Metadata {
  if (trace.getActiveSpan() === undefined) return metadata;
  const copy = metadata.clone();
  propagation.inject(context.active(), copy, metadataSetter);
  return copy;
}
