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
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT", hide_env_values = true)]
    otlp: Option<String>,
}

impl TraceArgs {
    /// Starts exporting, when asked and the standard variables do not turn it off
    /// (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`); inside the runtime, which the
    /// gRPC client runs on.
    pub(super) fn export(&self) -> anyhow::Result<Option<TraceExport>> {
        let Some(url) = &self.otlp else { return Ok(None) };
        let variable = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_ascii_lowercase());
        if variable("OTEL_SDK_DISABLED").as_deref() == Some("true")
            || variable("OTEL_TRACES_EXPORTER").as_deref() == Some("none")
        {
            tracing::info!(
                "not exporting traces: OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER says not to"
            );
            return Ok(None);
        }
        let protocol = variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p != "grpc") {
            anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL is {protocol}: knactor exports traces over OTLP/gRPC only (grpc)"
            );
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("--otlp: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
            anyhow::bail!("--otlp: not an http:// or https:// URL of an OTLP/gRPC receiver");
        }
        let shown = shown(&parsed);
        if !parsed.username().is_empty() || parsed.password().is_some() {
            tracing::warn!(
                "--otlp: the user and password in the URL are not sent; give credentials in OTEL_EXPORTER_OTLP_HEADERS"
            );
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| anyhow::anyhow!("--otlp {shown}: {e}"))?;
        // `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) names the
        // process when set; `knactor` otherwise.
        let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
            || variable("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
        let resource = match named {
            true => Resource::builder().build(),
            false => Resource::builder().with_service_name("knactor").build(),
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        data_exchange::trace::enable();
        tracing::info!(otlp = %shown, "exporting traces");
        Ok(Some(TraceExport(provider)))
    }
}

/// `url` without what a log must not show: a user name or password in it.
fn shown(url: &reqwest::Url) -> reqwest::Url {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
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
