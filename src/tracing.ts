//! Spans without a transport: the tracer, the "is anyone recording" check, and the span each tier
//! operation runs in. Surfaces (src/rpc/tracing.ts for gRPC metadata) build on these; nothing here
//! knows grpc-js, so the tiered store can trace without depending on a wire.

import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";

export const tracer = trace.getTracer("tierkv");

/** A span that records nothing, for calls made while no tracer provider is registered. */
export const NOT_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether a tracer provider is registered (by `startTracing`, or a test). Without one every span
 * is a no-op, yet extracting the caller's context and starting a span still cost a few µs per
 * call: server calls skip both.
 */
export function tracerRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegateTracer("tierkv") !== undefined;
}

/** Ends `span`, marked as failed with the error's `code` when `error` is defined. */
export function endSpan(span: Span, error: unknown): void {
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
