//! The conformance suite: what every Object backend must do, written once.
//!
//! A backend's test binary instantiates it with
//! `conformance_suite!(module_name, |history| async { Fixture::new(exchange, guard) })`.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::origin::{EdgeOrigin, Origin, Source};
use crate::trace::{self, TraceParent};
use crate::{ExchangeError, Expect, ObjectExchange, StoreRef, WatchEvent, WatchStream, Write};

/// An exchange under test and whatever must live as long as it (a server, a directory).
#[derive(Debug)]
pub struct Fixture {
    /// The exchange under test.
    pub exchange: Arc<dyn ObjectExchange>,
    _guard: Box<dyn Any + Send>,
    sparse_versions: bool,
    increments: u64,
    keeps_origins: bool,
    counts: bool,
    traces_deletions: bool,
}

impl Fixture {
    /// Wraps `exchange`, keeping `guard` alive beside it.
    pub fn new(exchange: Arc<dyn ObjectExchange>, guard: impl Any + Send) -> Self {
        let guard = Box::new(guard);
        let (sparse_versions, increments) = (false, 500);
        let (keeps_origins, counts, traces_deletions) = (true, true, true);
        let (_guard, exchange) = (guard, exchange);
        Fixture {
            exchange,
            _guard,
            sparse_versions,
            increments,
            keeps_origins,
            counts,
            traces_deletions,
        }
    }

    /// Says the backend's versions increase with every write to a store but may skip numbers
    /// (on Kubernetes they are etcd's revision, which every resource moves): the suite then
    /// checks that they increase, not that they increase by one, and that a delete returns a
    /// version at or after the deletion's.
    pub fn with_sparse_versions(mut self) -> Self {
        self.sparse_versions = true;
        self
    }

    /// Says the backend keeps no origins of fields: the suite then checks that it says so.
    pub fn without_origins(mut self) -> Self {
        self.keeps_origins = false;
        self
    }

    /// Says the backend cannot count a store's objects without listing them: the suite then
    /// checks that it says so.
    pub fn without_counts(mut self) -> Self {
        self.counts = false;
        self
    }

    /// Says the backend cannot tell a deletion's trace context (the apiserver keeps none): the
    /// suite then checks that a deletion's event carries none.
    pub fn without_deletion_traces(mut self) -> Self {
        self.traces_deletions = false;
        self
    }

    /// Checks that the exchange counts `objects` in `store`, or says it cannot count.
    async fn assert_count(&self, store: &StoreRef, objects: u64) {
        let counted = self.exchange.count(store).await.unwrap();
        assert_eq!(counted, self.counts.then_some(objects), "the objects the store holds");
    }

    /// Sets how many increments each of the concurrent writers makes (default 500), for a
    /// backend whose every write is a network round trip and a disk sync.
    pub fn with_increments(mut self, increments: u64) -> Self {
        self.increments = increments;
        self
    }

    /// Checks that `next` is the version of the write after the one at `previous`.
    fn assert_next(&self, previous: u64, next: u64) {
        if self.sparse_versions {
            assert!(next > previous, "version {next} does not follow {previous}");
        } else {
            assert_eq!(next, previous + 1, "the next write's version");
        }
    }

    /// Checks that a store's version reflects its last change, at `last`.
    fn assert_store_version(&self, store_version: u64, last: u64) {
        if self.sparse_versions {
            assert!(store_version >= last, "store version {store_version} is before {last}");
        } else {
            assert_eq!(store_version, last, "the store's version is its last change's");
        }
    }
}

/// Opens an exchange keeping `history` changes per store for watchers.
pub type Opener = dyn Fn(usize) -> BoxFuture<'static, Fixture> + Sync;

/// Instantiates the conformance suite as `mod $name`, opening exchanges with `$open`, an
/// `async fn(history: usize) -> Fixture` (`history`: changes kept per store for watchers).
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $open:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::testing::conformance as suite;

            $crate::conformance_suite!(@tests $open;
                crud, stale_conditional_write_changes_nothing, schema_violation_writes_nothing,
                unknown_store_is_rejected, unchanged_write_is_not_made, watch_sees_every_change,
                watch_resumes_from_a_version, expired_watch_says_so_and_relist_recovers,
                a_slow_watcher_misses_nothing_the_history_holds,
                concurrent_conditional_increments_lose_nothing,
                a_schema_is_held_and_changed_only_by_evolve,
                origins_name_the_last_writer_of_each_field,
                changes_carry_the_trace_context_of_their_write);
        }
    };
    (@tests $open:expr; $($test:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            suite::$test(&|history| Box::pin($open(history))).await;
        }
    )*};
}

/// The schema of the suite's counter store: `count` must be a non-negative integer.
pub fn counter_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "count": { "type": "integer", "minimum": 0, "x-knactor-ingest": true },
            "label": { "type": "string" },
            "tags": { "type": "object" }
        },
        "additionalProperties": false
    })
}

async fn open_with(open: &Opener, history: usize) -> (Fixture, StoreRef) {
    let fixture = open(history).await;
    let store: StoreRef = "counter/counts".parse().unwrap();
    fixture.exchange.register(&store, &counter_schema()).await.unwrap();
    (fixture, store)
}

/// Create, get, list, replace, patch, delete, and the errors of each misuse.
pub async fn crud(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let a = ex.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();
    assert_eq!((a.name.as_str(), a.data.clone()), ("a", json!({"count": 1})));
    let b = ex.write(&store, Write::create("b", json!({"count": 2}))).await.unwrap();
    assert!(b.version > a.version, "versions increase with every write");
    assert_eq!(ex.get(&store, "a").await.unwrap().as_deref(), Some(&*a));
    assert_eq!(ex.get(&store, "zz").await.unwrap(), None);

    let list = ex.list(&store).await.unwrap();
    fx.assert_store_version(list.version, b.version);
    assert_eq!(list.items.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    fx.assert_count(&store, 2).await;

    let err = ex.write(&store, Write::create("a", json!({"count": 9}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::AlreadyExists { .. }), "{err}");
    let err = ex.write(&store, Write::replace("zz", json!({"count": 9}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::NotFound { .. }), "{err}");

    let a2 = ex.write(&store, Write::replace("a", json!({"count": 5, "label": "x"}))).await;
    let a2 = a2.unwrap();
    assert!(a2.version > b.version);
    let patch = json!({"label": null, "tags": {"t": 1}});
    let a3 = ex.write(&store, Write::patch("a", patch)).await.unwrap();
    assert_eq!(a3.data, json!({"count": 5, "tags": {"t": 1}}), "RFC 7386: null removes");
    let c = ex.write(&store, Write::patch("c", json!({"count": 3})).or_create()).await.unwrap();
    assert_eq!(c.data, json!({"count": 3}), "a patch that may create starts from {{}}");

    let deleted = ex.write(&store, Write::delete("a")).await.unwrap();
    assert!(deleted.version > c.version);
    assert_eq!(deleted.data, a3.data, "a delete returns the last state");
    assert_eq!(ex.get(&store, "a").await.unwrap(), None);
    fx.assert_count(&store, 2).await;
    let err = ex.write(&store, Write::delete("a")).await.unwrap_err();
    assert!(matches!(err, ExchangeError::NotFound { .. }), "{err}");
    // A delete that expects the object absent deletes nothing, and the store goes on.
    let absent = Write { expect: Expect::Absent, ..Write::delete("a") };
    let err = ex.write(&store, absent).await.unwrap_err();
    assert!(matches!(err, ExchangeError::NotFound { .. }), "{err}");
    assert_eq!(ex.get(&store, "c").await.unwrap().map(|o| o.version), Some(c.version));
    // One that expects a version of a missing object finds a conflict, as a write would.
    let stale = Write { expect: Expect::Version(c.version), ..Write::delete("a") };
    let err = ex.write(&store, stale).await.unwrap_err();
    assert!(matches!(err, ExchangeError::Conflict { actual: None, .. }), "{err}");
    let long = "n".repeat(10_000);
    for bad in ["bad/name", ".", "..", "", &long] {
        let err = ex.write(&store, Write::create(bad, json!({}))).await.unwrap_err();
        assert!(matches!(err, ExchangeError::InvalidName(_)), "{bad:.20}: {err}");
        assert!(err.to_string().len() < 200, "the message does not echo the name: {err}");
    }
    assert_eq!(ex.list(&store).await.unwrap().items.len(), 2, "nothing written");
    fx.assert_count(&store, 2).await;
}

/// A write conditional on a stale version fails with a conflict and leaves the object as it was.
pub async fn stale_conditional_write_changes_nothing(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let v1 = ex.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();
    let v2 = ex.write(&store, Write::replace("a", json!({"count": 2})).if_version(v1.version));
    let v2 = v2.await.unwrap();
    for stale in [
        Write::replace("a", json!({"count": 3})).if_version(v1.version),
        Write::patch("a", json!({"count": 3})).if_version(v1.version),
        Write::delete("a").if_version(v1.version),
    ] {
        match ex.write(&store, stale).await.unwrap_err() {
            ExchangeError::Conflict { expected, actual, .. } => {
                assert_eq!((expected, actual), (v1.version, Some(v2.version)));
            }
            other => panic!("expected a conflict, got {other}"),
        }
    }
    assert_eq!(ex.get(&store, "a").await.unwrap().as_deref(), Some(&*v2));
    fx.assert_store_version(ex.list(&store).await.unwrap().version, v2.version);
    assert_eq!(ex.get(&store, "a").await.unwrap().as_deref(), Some(&*v2), "nothing changed");
}

/// A write whose result breaks the schema is rejected with the failing field's JSON pointer.
pub async fn schema_violation_writes_nothing(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let a = ex.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();
    let cases = [
        (Write::create("b", json!({"count": -1})), "/count"),
        (Write::replace("a", json!({"count": "one"})), "/count"),
        (Write::patch("a", json!({"label": 7})), "/label"),
        (Write::patch("a", json!({"unknown": true})), ""),
    ];
    for (write, pointer) in cases {
        match ex.write(&store, write).await.unwrap_err() {
            ExchangeError::SchemaViolation { violation, .. } => {
                assert_eq!(violation.pointer, pointer, "{violation}");
            }
            other => panic!("expected a schema violation, got {other}"),
        }
    }
    let err = ex.write(&store, Write::put("c", json!([1, 2]))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::NotAnObject { .. }), "{err}");
    let list = ex.list(&store).await.unwrap();
    fx.assert_store_version(list.version, a.version);
    assert_eq!(list.items, [a]);
}

/// Every operation on a store that was never registered fails with `UnknownStore`.
pub async fn unknown_store_is_rejected(open: &Opener) {
    let (fx, _) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let other: StoreRef = "other/things".parse().unwrap();
    let unknown = |r: Result<(), ExchangeError>| {
        assert!(matches!(r, Err(ExchangeError::UnknownStore(_))), "{r:?}");
    };
    unknown(ex.get(&other, "a").await.map(drop));
    unknown(ex.list(&other).await.map(drop));
    unknown(ex.write(&other, Write::put("a", json!({}))).await.map(drop));
    unknown(ex.watch(&other, 0).await.map(drop));
    if fx.counts {
        unknown(ex.count(&other).await.map(drop));
    }
    let err = ex.register(&other, &json!({"type": "nonsense"})).await.unwrap_err();
    assert!(matches!(err, ExchangeError::InvalidSchema { .. }), "{err}");
}

/// A write that leaves the data as it is bumps no version and emits no event.
pub async fn unchanged_write_is_not_made(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let a = ex.write(&store, Write::create("a", json!({"count": 1, "label": "x"}))).await.unwrap();
    let mut watch = ex.watch(&store, a.version).await.unwrap();
    let same = ex.write(&store, Write::put("a", json!({"label": "x", "count": 1}))).await.unwrap();
    assert_eq!(same.version, a.version);
    let same = ex.write(&store, Write::patch("a", json!({"count": 1}))).await.unwrap();
    assert_eq!(same.version, a.version);
    let b = ex.write(&store, Write::create("b", json!({}))).await.unwrap();
    fx.assert_next(a.version, b.version);
    let next = next_event(&mut watch).await;
    assert_eq!(next.object().name, "b", "the unchanged writes emitted nothing");
}

/// A watch delivers every change, in version order, with its kind and state.
pub async fn watch_sees_every_change(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let start = ex.list(&store).await.unwrap().version;
    let mut watch = ex.watch(&store, start).await.unwrap();
    let a = ex.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();
    let a2 = ex.write(&store, Write::patch("a", json!({"count": 2}))).await.unwrap();
    let gone = ex.write(&store, Write::delete("a")).await.unwrap();
    assert_eq!(next_event(&mut watch).await, WatchEvent::Added(a));
    assert_eq!(next_event(&mut watch).await, WatchEvent::Modified(a2.clone()));
    match next_event(&mut watch).await {
        WatchEvent::Deleted(seen) if fx.sparse_versions => {
            // The apiserver does not tell a deleter the deletion's version: the delete returns
            // the store's version right after it.
            assert_eq!((&seen.name, &seen.data), (&gone.name, &gone.data));
            assert!(a2.version < seen.version && seen.version <= gone.version, "{seen:?}");
        }
        seen => assert_eq!(seen, WatchEvent::Deleted(gone)),
    }
}

/// A watcher that reads nothing while 1,000 changes are made, fewer than the history keeps,
/// then gets every one of them in order.
pub async fn a_slow_watcher_misses_nothing_the_history_holds(open: &Opener) {
    let (fx, store) = open_with(open, 2000).await;
    let ex = &fx.exchange;
    let start = ex.list(&store).await.unwrap().version;
    let mut watch = ex.watch(&store, start).await.unwrap();
    for i in 0..1000 {
        ex.write(&store, Write::put(format!("o{}", i % 7), json!({"count": i}))).await.unwrap();
    }
    let mut last = start;
    for i in 0..1000 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.object().data, json!({"count": i}));
        fx.assert_next(last, event.version());
        last = event.version();
    }
}

/// A watch started from an earlier version replays exactly the changes after it.
pub async fn watch_resumes_from_a_version(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let mut versions = Vec::new();
    for i in 0..10 {
        let o = ex.write(&store, Write::put(format!("o{i}"), json!({"count": i}))).await.unwrap();
        versions.push(o.version);
    }
    let mut watch = ex.watch(&store, versions[4]).await.unwrap();
    for want in &versions[5..] {
        assert_eq!(next_event(&mut watch).await.version(), *want);
    }
    let live = ex.write(&store, Write::put("live", json!({}))).await.unwrap();
    assert_eq!(next_event(&mut watch).await, WatchEvent::Added(live));
}

/// Resuming from a version older than the exchange keeps says `Expired`; a re-list and a watch
/// from the list's version then see every later change.
pub async fn expired_watch_says_so_and_relist_recovers(open: &Opener) {
    let (fx, store) = open_with(open, 4).await;
    let ex = &fx.exchange;
    for i in 0..20 {
        ex.write(&store, Write::put("a", json!({"count": i}))).await.unwrap();
    }
    let expired = match ex.watch(&store, 1).await {
        Err(e) => e,
        Ok(mut watch) => watch.next().await.expect("an item").unwrap_err(),
    };
    assert!(matches!(expired, ExchangeError::Expired { .. }), "{expired}");
    let list = ex.list(&store).await.unwrap();
    assert_eq!(list.items[0].data, json!({"count": 19}));
    let mut watch = ex.watch(&store, list.version).await.unwrap();
    let next = ex.write(&store, Write::put("a", json!({"count": 20}))).await.unwrap();
    assert_eq!(next_event(&mut watch).await, WatchEvent::Modified(next));
}

/// Twenty writers each add one to a counter 500 times (or as the fixture says) with conditional writes, retrying on
/// conflict: no increment is lost.
pub async fn concurrent_conditional_increments_lose_nothing(open: &Opener) {
    const WRITERS: u64 = 20;
    let (fx, store) = open_with(open, 64).await;
    let increments = fx.increments;
    fx.exchange.write(&store, Write::create("n", json!({"count": 0}))).await.unwrap();
    let writers = (0..WRITERS).map(|_| {
        let (ex, store) = (fx.exchange.clone(), store.clone());
        tokio::spawn(async move {
            for _ in 0..increments {
                increment(&*ex, &store, "n").await;
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let n = fx.exchange.get(&store, "n").await.unwrap().unwrap();
    assert_eq!(n.data, json!({"count": WRITERS * increments}));
}

/// Adds one to `count` of `name` with a read and a write conditional on the version read.
pub async fn increment(ex: &dyn ObjectExchange, store: &StoreRef, name: &str) {
    loop {
        let current = ex.get(store, name).await.unwrap().unwrap();
        let count = current.data["count"].as_u64().unwrap();
        let write = Write::replace(name, json!({"count": count + 1})).if_version(current.version);
        match ex.write(store, write).await {
            Ok(_) => return,
            Err(ExchangeError::Conflict { .. }) => tokio::task::yield_now().await,
            Err(e) => panic!("increment failed: {e}"),
        }
    }
}

/// The next event of `watch`, failing the test after 10 s.
pub async fn next_event(watch: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("no event within 10 s")
        .expect("the watch ended")
        .expect("the watch failed")
}

/// A change's event carries the trace context its write ran in, and none when it ran in none;
/// a merge patch, which reads before it writes, too.
pub async fn changes_carry_the_trace_context_of_their_write(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    let start = ex.list(&store).await.unwrap().version;
    let mut watch = ex.watch(&store, start).await.unwrap();
    let traced = TraceParent { trace_id: [7; 16], span_id: [9; 8], sampled: true };
    let in_trace = |write| trace::within(Some(traced), ex.write(&store, write));
    in_trace(Write::create("a", json!({"count": 1}))).await.unwrap();
    ex.write(&store, Write::put("a", json!({"count": 2}))).await.unwrap();
    in_trace(Write::patch("a", json!({"count": 3}))).await.unwrap();
    in_trace(Write::delete("a")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut watch).await;
        seen.push((event.kind(), event.object().trace));
    }
    let deleted = fx.traces_deletions.then_some(traced);
    let want = [
        ("Added", Some(traced)),
        ("Modified", None),
        ("Modified", Some(traced)),
        ("Deleted", deleted),
    ];
    assert_eq!(seen, want);
}

/// The exchange holds the schema first registered: registering another is refused, changing
/// nothing; `evolve` changes it once the stored objects fit it, and writes follow it at once.
pub async fn a_schema_is_held_and_changed_only_by_evolve(open: &Opener) {
    let fx = open(64).await;
    let ex = &fx.exchange;
    // A store of its own: on Kubernetes the schema is a cluster-wide CRD.
    let store: StoreRef = "evolving/things".parse().unwrap();
    let v1 = json!({"type": "object", "properties": {"count": {"type": "integer"}}});
    ex.register(&store, &v1).await.unwrap();
    ex.register(&store, &v1).await.expect("registering the schema held is fine");
    let first = ex.evolve(&store, &v1, None).await.unwrap();

    let other = json!({"type": "object", "properties": {"count": {"type": "string"}}});
    match ex.register(&store, &other).await.unwrap_err() {
        ExchangeError::SchemaDiffers { version, .. } => assert_eq!(version, first),
        e => panic!("expected SchemaDiffers, got {e}"),
    }
    ex.write(&store, Write::put("a", json!({"count": 1}))).await.expect("still the first schema");

    let labelled = json!({"type": "object", "required": ["label"],
        "properties": {"count": {"type": "integer"}, "label": {"type": "string"}}});
    match ex.evolve(&store, &labelled, None).await.unwrap_err() {
        ExchangeError::SchemaBreaks { name, count, violation, .. } => {
            assert_eq!((name.as_str(), count), ("a", 1), "{violation}");
        }
        e => panic!("expected SchemaBreaks, got {e}"),
    }
    ex.write(&store, Write::put("b", json!({"count": 2}))).await.expect("unchanged by a refusal");

    let capped = json!({"type": "object",
        "properties": {"count": {"type": "integer", "maximum": 10}, "label": {"type": "string"}}});
    let second = ex.evolve(&store, &capped, None).await.unwrap();
    assert!(second > first, "a change moves the version: {first} -> {second}");
    assert_eq!(
        ex.evolve(&store, &capped, None).await.unwrap(),
        second,
        "the same schema is no change"
    );
    let err = ex.write(&store, Write::put("c", json!({"count": 11}))).await.unwrap_err();
    assert!(matches!(err, ExchangeError::SchemaViolation { .. }), "{err}");
    ex.write(&store, Write::patch("a", json!({"label": "x"}))).await.unwrap();
    let err = ex.register(&store, &v1).await.unwrap_err();
    assert!(
        matches!(err, ExchangeError::SchemaDiffers { .. }),
        "the old schema is not held: {err}"
    );
    ex.register(&store, &capped).await.expect("the schema held registers");
}

/// Each top-level field's origin is that of the last write that changed it: a write restamps
/// the fields it gives another value (a field it gives the value it had keeps its writer), a
/// put forgets the fields it drops, a write without origin leaves the fields it changes
/// without one, an unchanged write changes nothing, and a delete forgets them all.
pub async fn origins_name_the_last_writer_of_each_field(open: &Opener) {
    let (fx, store) = open_with(open, 64).await;
    let ex = &fx.exchange;
    if !fx.keeps_origins {
        let refused = ex.origins(&store, "a").await;
        assert!(matches!(refused, Err(ExchangeError::NoProvenance)), "{refused:?}");
        return;
    }
    let knactor = Arc::new(Origin::by("knactor:counter"));
    let create = Write::create("a", json!({"count": 1, "label": "x"})).by(knactor.clone());
    let a1 = ex.write(&store, create).await.unwrap();
    let source = Source {
        alias: "tally".into(),
        store: "tally/tallies".into(),
        name: "a".into(),
        version: 7,
    };
    let derived = Arc::new(Origin {
        writer: "integrator:count".into(),
        edge: Some(EdgeOrigin {
            spec: "count".into(),
            spec_version: 2,
            edge: "copy".into(),
            set: vec![("count".into(), "tally.n + 1".into())],
            sources: vec![source],
        }),
    });
    let a2 = ex.write(&store, Write::patch("a", json!({"count": 2})).by(derived.clone())).await;
    let a2 = a2.unwrap();
    let same = Write::patch("a", json!({"count": 2})).by(Arc::new(Origin::by("operator")));
    ex.write(&store, same).await.unwrap();
    let writers = |origins: crate::Origins| -> Vec<(String, u64, Arc<Origin>)> {
        origins.into_iter().map(|(f, s)| (f, s.version, s.origin)).collect()
    };
    let origins = ex.origins(&store, "a").await.unwrap().expect("a exists");
    let want =
        [("count".to_owned(), a2.version, derived), ("label".to_owned(), a1.version, knactor)];
    assert_eq!(writers(origins), want, "an unchanged write stamps nothing");

    ex.write(&store, Write::patch("a", json!({"label": "y"}))).await.unwrap();
    let origins = ex.origins(&store, "a").await.unwrap().expect("a exists");
    assert_eq!(origins.keys().collect::<Vec<_>>(), ["count"], "label's writer is unknown now");
    let operator = Arc::new(Origin::by("operator"));
    let put = Write::put("a", json!({"count": 3})).by(operator.clone());
    let a3 = ex.write(&store, put).await.unwrap();
    let origins = ex.origins(&store, "a").await.unwrap().expect("a exists");
    assert_eq!(writers(origins), [("count".to_owned(), a3.version, operator.clone())]);

    // A put that gives a field the value it had leaves that field's writer as it was.
    let labeller = Arc::new(Origin::by("knactor:labeller"));
    let label = Write::patch("a", json!({"label": "q"})).by(labeller.clone());
    let a4 = ex.write(&store, label).await.unwrap();
    let other = Arc::new(Origin::by("knactor:other"));
    let put = Write::put("a", json!({"count": 4, "label": "q"})).by(other.clone());
    let a5 = ex.write(&store, put).await.unwrap();
    let origins = ex.origins(&store, "a").await.unwrap().expect("a exists");
    let want =
        [("count".to_owned(), a5.version, other), ("label".to_owned(), a4.version, labeller)];
    assert_eq!(writers(origins), want, "only what a put changes is restamped");

    assert_eq!(ex.origins(&store, "zz").await.unwrap(), None, "no object, no origins");
    ex.write(&store, Write::delete("a")).await.unwrap();
    assert_eq!(ex.origins(&store, "a").await.unwrap(), None);
    ex.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();
    let origins = ex.origins(&store, "a").await.unwrap().expect("a exists again");
    assert!(origins.is_empty(), "a deleted object's origins are forgotten: {origins:?}");
}
