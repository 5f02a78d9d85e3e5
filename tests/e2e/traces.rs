//! `--otlp`: one retail order is one trace, from the shopper's write through every edge and
//! reconcile it causes, exported over OTLP/gRPC to a receiver the test runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use reqwest::Method;
use serde_json::json;

use crate::api::Api;
use crate::harness::{Up, eventually, knactor, retail_app, try_within};
use crate::retail::order_data;

/// An OTLP/gRPC trace receiver: keeps every span exported to it.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let resources = request.into_inner().resource_spans;
        let spans = resources.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
        self.spans.lock().unwrap().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Starts receiving on a free loopback port, on `runtime`; its URL.
    fn start(&self, runtime: &tokio::runtime::Runtime) -> String {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let service = TraceServiceServer::new(self.clone());
        let server = tonic::transport::Server::builder().add_service(service);
        runtime.spawn(server.serve_with_incoming(incoming));
        url
    }

    /// The spans of trace `trace_id` received so far.
    fn trace(&self, trace_id: &[u8]) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

/// The string attribute `key` of `span`.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    let value = span.attributes.iter().find(|a| a.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        AnyValue::StringValue(text) => Some(text),
        _ => None,
    }
}

/// The names of the spans from `span` up to the root of its trace, `span`'s first.
fn ancestry(span: &Span, by_id: &HashMap<Vec<u8>, &Span>) -> Vec<String> {
    let mut names = vec![span.name.clone()];
    let mut at = span;
    while let Some(parent) = by_id.get(&at.parent_span_id) {
        names.push(parent.name.clone());
        at = parent;
    }
    names
}

#[test]
fn one_retail_order_is_one_trace_through_the_api_edges_and_reconcilers() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let url = receiver.start(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let mut command = knactor();
    command.env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let up = Up::start_as(command, &retail_app(dir.path()), &["--otlp", &url]);
    let api = Api::new(&up);
    let client = up.client();
    let completed = |name: &str| {
        eventually(&format!("order {name} to complete"), || {
            let order = runtime.block_on(client.get("checkout/orders", name)).ok()?;
            (order["data"]["status"] == "completed").then_some(())
        })
    };
    // A first order, once completed, shows every reconciler and integrator past its start: the
    // next order's changes reach each as changes, not in the list it starts from (which
    // carries no trace on).
    let mut warm_up = order_data(12.0);
    warm_up["email"] = json!("bob@example.com");
    runtime.block_on(client.put("checkout/orders", "t0", warm_up, None)).unwrap();
    completed("t0");

    // The shopper's client started the trace: the API's span is a child of its span.
    let (trace_hex, client_span_hex) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let traceparent = format!("00-{trace_hex}-{client_span_hex}-01");
    let mut order = order_data(31.0);
    order["email"] = json!("ada@example.com");
    let body = json!({ "data": order }).to_string();
    let put = api.send(
        Method::PUT,
        "/v1/stores/checkout/orders/objects/t1",
        Some(&up.operator_token()),
        &[("traceparent", &traceparent)],
        Some(("application/json", &body)),
    );
    assert_eq!(put.status, 200, "{put:?}");
    completed("t1");

    let trace_id = hex(trace_hex);
    let wanted = [
        "reconcile checkout",
        "cast checkout/request-payment",
        "reconcile payment",
        "cast checkout/report-payment",
        "cast checkout/request-shipment",
        "reconcile shipping",
        "cast checkout/report-shipment",
        "cast email/confirm-order",
        "reconcile email",
    ];
    let complete = |spans: &[Span]| wanted.iter().all(|w| spans.iter().any(|s| s.name == *w));
    let spans = try_within(Duration::from_secs(60), || {
        let spans = receiver.trace(&trace_id);
        complete(&spans).then_some(spans)
    });
    let spans = spans.unwrap_or_else(|| {
        let spans = receiver.trace(&trace_id);
        let missing: Vec<_> = wanted.iter().filter(|w| !spans.iter().any(|s| s.name == **w)).collect();
        let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
        let all = receiver.spans.lock().unwrap().len();
        panic!("the order's trace lacks {missing:?} after 60 s: it has {names:?} ({all} spans received in all)");
    });

    // One root, the API's write, whose parent is the client's span; every other span is a
    // child of a span of the trace.
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let roots: Vec<&Span> =
        spans.iter().filter(|s| !by_id.contains_key(&s.parent_span_id)).collect();
    let names: Vec<&str> = roots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["PUT /v1/stores/{knactor}/{store}/objects/{name}"], "one root");
    assert_eq!(roots[0].parent_span_id, hex(client_span_hex), "the client's span is its parent");
    assert_eq!(attribute(roots[0], "url.path"), Some("/v1/stores/checkout/orders/objects/t1"));
    // Each step follows from the write that caused it, back to the shopper's.
    let of = |name: &str| spans.iter().find(|s| s.name == name).unwrap();
    let email = ancestry(of("reconcile email"), &by_id);
    assert_eq!(email[..2], ["reconcile email", "cast email/confirm-order"], "{email:?}");
    assert_eq!(email.last().map(String::as_str), Some(names[0]), "{email:?}");
    let shipping = ancestry(of("reconcile shipping"), &by_id);
    assert_eq!(shipping[1], "cast checkout/request-shipment", "{shipping:?}");
    let payment = ancestry(of("reconcile payment"), &by_id);
    assert_eq!(payment[1], "cast checkout/request-payment", "{payment:?}");
    for span in
        spans.iter().filter(|s| s.name.starts_with("cast ") || s.name.starts_with("reconcile "))
    {
        assert_eq!(attribute(span, "knactor.object"), Some("t1"), "{}", span.name);
    }
    let store = attribute(of("reconcile shipping"), "knactor.store");
    assert_eq!(store, Some("shipping/shipments"));
}

/// The bytes of `text`, pairs of hex digits.
fn hex(text: &str) -> Vec<u8> {
    let pairs = text.as_bytes().chunks(2);
    pairs.map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}
