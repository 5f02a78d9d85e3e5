//! `--otlp URL`: exports the spans of each change's steps (see [`data_exchange::trace`]) over
//! OTLP/gRPC, to an OpenTelemetry Collector, Jaeger, Tempo or any OTLP receiver.

use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

/// Where the spans go.
#[derive(clap::Args, Debug)]
pub(super) struct TraceArgs {
    /// Exports a span for each step of each change (a request's write, an edge's evaluation, a
    /// reconcile), as one trace per change and what follows from it, over OTLP/gRPC to URL
    /// (e.g. http://localhost:4317); off without it.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp: Option<String>,
}

impl TraceArgs {
    /// Starts exporting, when asked (inside the runtime: the gRPC client runs on it).
    pub(super) fn export(&self) -> anyhow::Result<Option<TraceExport>> {
        let Some(url) = &self.otlp else { return Ok(None) };
        let parsed = reqwest::Url::parse(url).ok();
        let valid = parsed.filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if valid.is_none() {
            anyhow::bail!("--otlp {url}: not an http:// or https:// URL of an OTLP/gRPC receiver");
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("--otlp {url}: {e}"))?;
        let resource = Resource::builder().with_service_name("knactor").build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        data_exchange::trace::enable();
        tracing::info!(otlp = url, "exporting traces");
        Ok(Some(TraceExport(provider)))
    }
}

/// Spans being exported; [`TraceExport::finish`] sends the last ones.
#[derive(Debug)]
pub(super) struct TraceExport(SdkTracerProvider);

impl TraceExport {
    /// Exports the spans not sent yet, and stops.
    pub(super) async fn finish(self) {
        let provider = self.0;
        let finished = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = finished {
            tracing::warn!(%error, "the last spans were not exported");
        }
    }
}
