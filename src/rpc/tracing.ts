//! Tracing of gRPC calls through `@opentelemetry/api` (tier spans: src/tracing.ts): a span per call, W3C trace context
//! taken from incoming metadata and forwarded down a chain (A → B → C is one trace). Spans are
//! exported over OTLP only when the operator sets the standard OTEL_EXPORTER_OTLP_* variables;
//! otherwise the API's no-op tracer costs next to nothing.

import * as grpc from "@grpc/grpc-js";
import { context, propagation, ROOT_CONTEXT, SpanKind, trace, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { endSpan, NOT_RECORDING, tracer, tracerRegistered } from "../tracing.js";

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

/** `metadata` with the current trace context added (a copy), or `metadata` itself outside any trace. */
export function withTraceContext(metadata: grpc.Metadata): grpc.Metadata {
  if (trace.getActiveSpan() === undefined) return metadata;
  const copy = metadata.clone();
  propagation.inject(context.active(), copy, metadataSetter);
  return copy;
}
