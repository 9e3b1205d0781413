//! Tracing through `@opentelemetry/api`: a span per tier operation, and W3C trace context
//! forwarded down a chain (A → B → C is one trace); server spans are `src/service/span.ts`'s. Spans are
//! exported over OTLP only when the operator sets the standard OTEL_EXPORTER_OTLP_* variables;
//! otherwise the API's no-op tracer costs next to nothing.

import * as grpc from "@grpc/grpc-js";
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span,
  type TextMapSetter,
} from "@opentelemetry/api";

const tracer = trace.getTracer("tierkv");

const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

function endSpan(span: Span, error: unknown): void {
  if (error !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? "error" });
  }
  span.end();
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
