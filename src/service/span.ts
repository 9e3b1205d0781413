//! The server span of every call, on every surface: named `<service>/<method>`, kind SERVER, its
//! parent the caller's W3C `traceparent` header, if any. Tier spans (`src/tracing.ts`) are its
//! children. Without a registered tracer provider nothing is extracted or started.

import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter } from "@opentelemetry/api";
import { tracer, tracerRegistered } from "../tracing.js";

/** Reads one header (gRPC metadata or HTTP) of an incoming call, for trace context. */
export type HeaderGetter = (name: string) => string | undefined;

const headerGetter: TextMapGetter<HeaderGetter> = {
  keys: () => ["traceparent", "tracestate"],
  get: (header, key) => header(key),
};

/** A server call's span, started when the call starts and ended by whoever ends the call. */
export interface ServerSpan {
  /** Runs `work` with this span active, so tier spans and outgoing calls are its children. */
  run<T>(work: () => Promise<T>): Promise<T>;
  setAttribute(key: string, value: string): void;
  /** Ends the span; an error (a StoreError) sets its status to ERROR with the error's code. */
  end(error: unknown): void;
}

const NO_SPAN: ServerSpan = {
  run: (work) => work(),
  setAttribute() {},
  end() {},
};

/** Starts a server span named `name`; `system` is its `rpc.system` (`grpc`, `connect_rpc`, …). */
export function startServerSpan(name: string, system: string, header: HeaderGetter): ServerSpan {
  if (!tracerRegistered()) return NO_SPAN;
  const parent = propagation.extract(ROOT_CONTEXT, header, headerGetter);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: { "rpc.system": system } }, parent);
  const active = trace.setSpan(parent, span);
  return {
    run: (work) => context.with(active, work),
    setAttribute: (key, value) => void span.setAttribute(key, value),
    end(error) {
      if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? "error" });
      span.end();
    },
  };
}
