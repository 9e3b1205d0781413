//! Turns tracing on when the operator configured an OTLP endpoint with the standard variables.

import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

/** The variables that ask for OTLP export (the exporter reads them itself). */
const OTLP_VARIABLES = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/** Registers an OTLP-exporting tracer provider when configured; returns its shutdown, or undefined. */
export function startTracing(env: NodeJS.ProcessEnv): (() => Promise<void>) | undefined {
  if (env["OTEL_SDK_DISABLED"] === "true" || !OTLP_VARIABLES.some((name) => (env[name] ?? "") !== "")) return undefined;
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register();
  return () => provider.shutdown();
}
