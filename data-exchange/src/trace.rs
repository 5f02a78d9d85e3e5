//! Traces across services: each change carries the W3C trace context (`traceparent`) of the
//! write that made it, so the work it causes (an edge's write, a reconcile) joins the same
//! trace, one span per step, as a child of the span that wrote the change.
//!
//! - The writer's context is [`current`]: the work running [`within`] a span. Each backend
//!   stores it with the change it writes (the embedded exchange on the object, Redis in the
//!   change's stream entry, Kubernetes as an annotation), and gives it back on
//!   [`Object::trace`](crate::Object::trace) of the watch event.
//! - Spans are made through the OpenTelemetry API with the global tracer; the process that
//!   exports them installs an SDK and calls [`enable`]. Until then [`ChangeSpan::start`] makes
//!   nothing: a process that does not trace carries on the context its changes came with (see
//!   [`carried`]), and one whose changes came with none writes none.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

pub use opentelemetry::KeyValue;
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _,
};
use opentelemetry::{Context, global};

static ENABLED: AtomicBool = AtomicBool::new(false);

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// Makes [`ChangeSpan::start`] record spans with the global tracer (its provider set by the
/// caller).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The trace context of the work running now, which the writes it makes carry.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|parent| *parent).ok()
}

/// The context the work of a step carries on to the writes it makes: its span's, or, when it
/// records none (the trace is not sampled, or tracing is off here), the context it was given,
/// so that the trace goes on unbroken past it.
pub fn carried(span: Option<&ChangeSpan>, parent: Option<TraceParent>) -> Option<TraceParent> {
    span.map(ChangeSpan::context).or(parent)
}

/// Runs `work` with `parent` as its trace context (see [`current`]); as it is when `None`.
pub async fn within<F: Future>(parent: Option<TraceParent>, work: F) -> F::Output {
    match parent {
        Some(parent) => CURRENT.scope(parent, work).await,
        None => work.await,
    }
}

/// A W3C trace context, as the `traceparent` header spells it: the trace, the span that made
/// the change, and whether the trace is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace, 16 bytes (not all zero).
    pub trace_id: [u8; 16],
    /// The parent span, 8 bytes (not all zero).
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
}

impl TraceParent {
    /// Reads a `traceparent` (`VERSION-<32 hex>-<16 hex>-<2 hex>`, lowercase hex); `None`
    /// when it is not one, or names no trace or no span (all zeros). Of a version after `00`,
    /// the parts `00` defines are read and what follows them is left, as W3C asks.
    pub fn parse(text: &str) -> Option<TraceParent> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let version = hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let (trace_id, span_id) = (hex::<16>(trace)?, hex::<8>(span)?);
        let flags = hex::<1>(flags)?[0];
        let named = trace_id != [0; 16] && span_id != [0; 8];
        named.then_some(TraceParent { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    fn context(self) -> Context {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let (trace, span) = (TraceId::from_bytes(self.trace_id), SpanId::from_bytes(self.span_id));
        let remote = SpanContext::new(trace, span, flags, true, TraceState::default());
        Context::new().with_remote_span_context(remote)
    }
}

/// `N` bytes from exactly `2 * N` lowercase hex digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if text.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        self.trace_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("-")?;
        self.span_id.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "-{:02x}", u8::from(self.sampled))
    }
}

/// One step of work a change caused (a request's write, an edge's evaluation, a reconcile),
/// recorded as a span when it is dropped.
#[derive(Debug)]
pub struct ChangeSpan {
    span: global::BoxedSpan,
    parent: TraceParent,
}

impl ChangeSpan {
    /// Starts a span of `kind` as a child of `parent` (a new trace without one), with the name
    /// and attributes `describe` gives; `None` while tracing is off (`describe` is then not
    /// called), or when `parent` is not sampled.
    pub fn start(
        kind: SpanKind,
        parent: Option<TraceParent>,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
    ) -> Option<ChangeSpan> {
        ChangeSpan::start_at(SystemTime::now(), kind, parent, describe)
    }

    /// [`ChangeSpan::start`] for a step that started at `started`.
    pub fn start_at(
        started: SystemTime,
        kind: SpanKind,
        parent: Option<TraceParent>,
        describe: impl FnOnce() -> (String, Vec<KeyValue>),
    ) -> Option<ChangeSpan> {
        if !enabled() || parent.is_some_and(|p| !p.sampled) {
            return None;
        }
        let parent_context = parent.map_or_else(Context::new, TraceParent::context);
        let tracer = global::tracer("knactor");
        let (name, attributes) = describe();
        let builder = tracer.span_builder(name).with_kind(kind).with_attributes(attributes);
        let builder = builder.with_start_time(started);
        let span = builder.start_with_context(&tracer, &parent_context);
        let context = span.span_context();
        let parent = TraceParent {
            trace_id: context.trace_id().to_bytes(),
            span_id: context.span_id().to_bytes(),
            sampled: context.is_sampled(),
        };
        Some(ChangeSpan { span, parent })
    }

    /// The context the writes made in this span carry: run them [`within`] it.
    pub fn context(&self) -> TraceParent {
        self.parent
    }

    /// Adds attribute `key`.
    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.span.set_attribute(KeyValue::new(key, value));
    }

    /// The attributes of a change to object `name` of `store`: the store, the object, and the
    /// version the change made, when known.
    pub fn object_attributes(
        store: &dyn fmt::Display,
        name: &str,
        version: Option<u64>,
    ) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new("knactor.store", store.to_string()),
            KeyValue::new("knactor.object", name.to_owned()),
        ];
        let version = version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        attributes.extend(version.map(|v| KeyValue::new("knactor.version", v)));
        attributes
    }

    /// Marks the step failed, with why.
    pub fn fail(&mut self, error: &dyn fmt::Display) {
        self.span.set_status(Status::error(error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(text).unwrap();
        assert!(parent.sampled);
        assert_eq!(parent.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert_eq!(parent.to_string(), text);
        let unsampled = TraceParent::parse(&text.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
    }

    #[test]
    fn a_malformed_traceparent_is_none() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for bad in [
            "",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        assert!(TraceParent::parse(good).is_some());
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert_eq!(TraceParent::parse(later), TraceParent::parse(good), "a later version");
    }

    #[test]
    fn a_step_that_records_no_span_carries_on_the_context_it_was_given() {
        let unsampled = TraceParent { trace_id: [1; 16], span_id: [2; 8], sampled: false };
        assert!(!enabled(), "no test here installs a tracer");
        let span = ChangeSpan::start(SpanKind::Consumer, Some(unsampled), || unreachable!());
        assert!(span.is_none());
        assert_eq!(carried(span.as_ref(), Some(unsampled)), Some(unsampled));
        assert_eq!(carried(None, None), None);
    }

    #[tokio::test]
    async fn work_within_a_context_sees_it_and_work_outside_does_not() {
        let parent = TraceParent { trace_id: [1; 16], span_id: [2; 8], sampled: true };
        assert_eq!(current(), None);
        assert_eq!(within(Some(parent), async { current() }).await, Some(parent));
        assert_eq!(within(None, async { current() }).await, None);
        let nested = within(Some(parent), within(None, async { current() })).await;
        assert_eq!(nested, Some(parent), "None keeps the context around it");
    }
}
