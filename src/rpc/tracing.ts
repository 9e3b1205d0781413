//! Trace context in gRPC metadata: a client call carries the current W3C trace context down a
//! chain (A → B → C is one trace). Server spans are `src/service/span.ts`'s, tier spans
//! `src/tracing.ts`'s. Spans are exported over OTLP only when the operator sets the standard
//! OTEL_EXPORTER_OTLP_* variables; otherwise the API's no-op tracer costs next to nothing.

import * as grpc from "@grpc/grpc-js";
import { context, propagation, trace, type TextMapSetter } from "@opentelemetry/api";

const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set: (metadata, key, value) => metadata.set(key, value),
};

/** `metadata` with the current trace context added (a copy), or `metadata` itself outside any trace. */
export function withTraceContext(metadata: grpc.Metadata): grpc.Metadata {
  if (trace.getActiveSpan() === undefined) return metadata;
  const copy = metadata.clone();
  propagation.inject(context.active(), copy, metadataSetter);
  return copy;
}
