//! Turns tracing on when the operator configured an OTLP endpoint with the standard variables.

import { defaultResource, detectResources, envDetector, resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { VERSION } from "../version.js";

/** The variables that ask for OTLP export (the exporter reads them itself). */
const OTLP_VARIABLES = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/**
 * What the spans say about their source: the SDK's defaults (telemetry.sdk.*), then tierkv's
 * name and version, then whatever `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` say (the
 * SDK's own env detector reads them from process.env; later sources win).
 */
export function tracingResource(): Resource {
  return defaultResource()
    .merge(resourceFromAttributes({ "service.name": "tierkv", "service.version": VERSION }))
    .merge(detectResources({ detectors: [envDetector] }));
}

/**
 * Registers an OTLP-exporting tracer provider when configured; returns its shutdown, or undefined.
 * The SDK and exporter load only then: they are a quarter of `tierkv serve`'s start-up otherwise.
 */
export async function startTracing(env: NodeJS.ProcessEnv): Promise<(() => Promise<void>) | undefined> {
  if (env["OTEL_SDK_DISABLED"] === "true" || !OTLP_VARIABLES.some((name) => (env[name] ?? "") !== "")) return undefined;
  const [{ OTLPTraceExporter }, { BatchSpanProcessor, NodeTracerProvider }] = await Promise.all([
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/sdk-trace-node"),
  ]);
  const provider = new NodeTracerProvider({ resource: tracingResource(), spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
  provider.register();
  return () => provider.shutdown();
}
