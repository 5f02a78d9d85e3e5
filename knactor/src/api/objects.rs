//! Handlers of `/v1/stores/...`: objects and watches.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use data_exchange::{
    ExchangeError, Expect, Object, ObjectExchange, Origin, StoreRef, WatchEvent, Write, WriteOp,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, Principal};
use crate::retention::{Consumers, Retention, consumer_name};
use crate::why::WhyError;

type ApiResult<T> = Result<T, ApiError>;

/// `GET /v1/stores`: every store of the app, Object and Log, with its kind, owner and schema
/// (to a knactor or an integrator, those its rights reach); and how many objects or records it
/// holds, to a principal that may read them all (`null` to others, or when it cannot be read).
pub(super) async fn stores(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Json<Value> {
    let rights = state.rights_of(&principal);
    let visible = |store: &StoreRef| rights.as_ref().is_none_or(|r| r.on(store).is_some());
    let counted = |store: &StoreRef| match &rights {
        None => principal == Principal::Operator,
        Some(rights) => rights.on(store).is_some_and(|g| g.reads() && g.objects.is_none()),
    };
    let visible_in = |stores: &crate::knactors::StoreSchemaMap| -> Vec<(StoreRef, Value)> {
        let stores = stores.read().unwrap_or_else(|e| e.into_inner());
        stores.iter().filter(|(s, _)| visible(s)).map(|(s, v)| (s.clone(), v.clone())).collect()
    };
    let mut listed = Vec::new();
    for (store, schema) in visible_in(&state.stores) {
        let count = match counted(&store) {
            // Counted without reading the objects where the exchange can (the console asks
            // every 2 s).
            true => match state.exchange.count(&store).await {
                Ok(Some(objects)) => Some(objects),
                Ok(None) => state.exchange.list(&store).await.ok().map(|l| l.items.len() as u64),
                Err(_) => None,
            },
            false => None,
        };
        listed.push(described(&store, "Object", schema, count));
    }
    for (store, schema) in visible_in(&state.log_stores) {
        let count = match counted(&store) {
            true => state.log.end(&store).await.ok(),
            false => None,
        };
        listed.push(described(&store, "Log", schema, count));
    }
    Json(json!({ "stores": listed }))
}

/// A store as `GET /v1/stores` lists it.
fn described(store: &StoreRef, kind: &str, schema: Value, count: Option<u64>) -> Value {
    json!({"store": store.to_string(), "kind": kind, "owner": store.knactor(), "count": count, "schema": schema})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    #[serde(default)]
    watch: bool,
    version: Option<u64>,
    /// Whether each object says what keeps it from being collected (`heldBy`).
    #[serde(default)]
    retention: bool,
}

fn store_ref(knactor: &str, store: &str) -> ApiResult<StoreRef> {
    Ok(StoreRef::new(knactor, store)?)
}

/// `GET .../objects`: the list, or with `?watch=true` a stream of changes.
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let store = store_ref(&knactor, &store)?;
    let operation = if query.watch { "watch" } else { "list" };
    let exchange = state.exchange_for(&principal, (operation, &store))?;
    if !query.watch {
        let list = exchange.list(&store).await?;
        let mut items: Vec<Value> = list.items.iter().map(|o| json!(&**o)).collect();
        let mut listed = json!({"version": list.version});
        if query.retention {
            let held = held_by(&state, &principal, &store, &list.items).await?;
            for (item, held) in items.iter_mut().zip(held) {
                item["heldBy"] = json!(held);
            }
            listed["retention"] = retention_of(&state, &store).to_json();
        }
        listed["items"] = items.into();
        return Ok(Json(listed).into_response());
    }
    // Without a version, start with the current objects as `Added`, like `kubectl get -w`.
    let (initial, from) = match query.version {
        Some(version) => (Vec::new(), version),
        None => {
            let list = exchange.list(&store).await?;
            (list.items.into_iter().map(WatchEvent::Added).collect(), list.version)
        }
    };
    let watched = exchange.watch(&store, from).await;
    // A version from the future is not a watch that expired, nor one to wait on in silence;
    // one of data the exchange lost is an expired one.
    let expired_or_ok = matches!(watched, Ok(_) | Err(ExchangeError::Expired { lost: false, .. }));
    if query.version.is_some() && expired_or_ok {
        let now = exchange.version(&store).await?;
        if from > now {
            return Err(ApiError::bad_request(format!(
                "version {from} is ahead of the store's ({now}): watch from a version a list or an event gave"
            )));
        }
    }
    let changes = watched?;
    let events = futures::stream::iter(initial.into_iter().map(Ok)).chain(changes);
    let denials = super::guard::stream_denials(&state, &principal, "watch", &store);
    let lines = json_lines(events, denials).take_until(state.shutdown.clone().cancelled_owned());
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

/// The retention policy of `store`.
fn retention_of(state: &ApiState, store: &StoreRef) -> Retention {
    state.running.as_ref().map_or(Retention::Keep, |knactors| knactors.retention(store))
}

/// What keeps each of `objects` (of `store`) from being collected: `keep` (the store's
/// policy), `unfinished` (its `when` does not hold), the consumers that have not handled it
/// (`cast/NAME`, `reconciler/KNACTOR`), and `source:STORE` where an object of its name would
/// create it again (`keyed:cast/NAME`: an edge with a `key` might); nothing when it is due (a
/// policy's `ttl`, and a source's deletion not handled yet, aside).
async fn held_by(
    state: &ApiState,
    principal: &Principal,
    store: &StoreRef,
    objects: &[Arc<Object>],
) -> ApiResult<Vec<Vec<String>>> {
    let Some(finished) = retention_of(state, store).finished() else {
        return Ok(objects.iter().map(|_| vec!["keep".to_owned()]).collect());
    };
    let consumers = Consumers::read(&*state.exchange).await?;
    // A source is looked at only where the caller may read it.
    let rights = state.rights_of(principal);
    let readable =
        |source: &StoreRef| rights.as_ref().is_none_or(|r| r.on(source).is_some_and(|g| g.reads()));
    let mut feeders = consumers.feeders(store);
    feeders.retain(|feeder| feeder.store.as_ref().is_none_or(readable));
    let mut held = Vec::with_capacity(objects.len());
    for object in objects {
        let mut by: Vec<String> =
            (!finished.holds(object)).then(|| "unfinished".to_owned()).into_iter().collect();
        by.extend(consumers.holding(store, object.version));
        for feeder in &feeders {
            match &feeder.store {
                None => by.push(format!("keyed:{}", consumer_name(&feeder.checkpoint))),
                Some(source) if state.exchange.get(source, &object.name).await?.is_some() => {
                    by.push(format!("source:{source}"));
                }
                Some(_) => {}
            }
        }
        by.dedup();
        held.push(by);
    }
    Ok(held)
}

/// Renders watch events as JSON lines; a watch ends after an error, which becomes its last line
/// (and a denial is recorded by `denials`).
fn json_lines(
    events: impl Stream<Item = Result<WatchEvent, data_exchange::ExchangeError>> + Send + 'static,
    denials: impl Fn(&data_exchange::ExchangeError) + Send + 'static,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    events.map(move |event| {
        let line = match event {
            Ok(event) => json!({"type": event.kind(), "object": &**event.object()}),
            Err(e) => {
                denials(&e);
                ApiError::from(e).body()
            }
        };
        let mut bytes = serde_json::to_vec(&line).expect("JSON values serialize");
        bytes.push(b'\n');
        Ok(Bytes::from(bytes))
    })
}

/// `GET .../objects/{name}`.
pub(super) async fn get(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Arc<Object>>> {
    let store = store_ref(&knactor, &store)?;
    match state.exchange_for(&principal, ("get", &store))?.get(&store, &name).await? {
        Some(object) => Ok(Json(object)),
        None => Err(data_exchange::ExchangeError::NotFound { store, name }.into()),
    }
}

/// The body of a `PUT`: the object's data, and optionally the version it must be at.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<u64>,
    data: Value,
}

/// `PUT .../objects/{name}`: create or replace.
pub(super) async fn put(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let store = store_ref(&knactor, &store)?;
    let body: PutBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::bad_request("the body's name differs from the URL's"));
    }
    let mut expect = precondition(&headers)?;
    if let Some(version) = body.version {
        expect = Expect::Version(version);
    }
    let write = Write { name, op: WriteOp::Put(body.data), expect, origin: None };
    let object = write_as(&state, &principal, &store, write).await?;
    let status = if expect == Expect::Absent { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(object)).into_response())
}

/// `PATCH .../objects/{name}`: JSON merge patch of the data.
pub(super) async fn patch(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Arc<Object>>> {
    let store = store_ref(&knactor, &store)?;
    let patch: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
    let expect = existing(&headers, "PATCH")?;
    let write = Write { name, op: WriteOp::Patch(patch), expect, origin: None };
    Ok(Json(write_as(&state, &principal, &store, write).await?))
}

/// `DELETE .../objects/{name}`.
pub(super) async fn delete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Arc<Object>>> {
    let store = store_ref(&knactor, &store)?;
    let expect = existing(&headers, "DELETE")?;
    let write = Write { name, op: WriteOp::Delete, expect, origin: None };
    Ok(Json(write_as(&state, &principal, &store, write).await?))
}

/// Applies `write` to `store` as `principal`, who is on record as the writer of the fields it
/// sets.
async fn write_as(
    state: &ApiState,
    principal: &Principal,
    store: &StoreRef,
    write: Write,
) -> ApiResult<Arc<Object>> {
    let write = write.by(Arc::new(Origin::by(principal.to_string())));
    let operation = match write.op {
        WriteOp::Put(_) => "put",
        WriteOp::Patch(_) => "patch",
        WriteOp::Delete => "delete",
    };
    Ok(state.exchange_for(principal, (operation, store))?.write(store, write).await?)
}

/// The precondition of a write to an object that must exist (`method`: a PATCH or a DELETE):
/// present, at the version of `If-Match` if given. `If-None-Match` is for a PUT's create.
fn existing(headers: &HeaderMap, method: &str) -> ApiResult<Expect> {
    if headers.contains_key(header::IF_NONE_MATCH) {
        return Err(ApiError::bad_request(format!(
            "If-None-Match makes a PUT create-only; a {method} takes If-Match: VERSION"
        )));
    }
    Ok(match precondition(headers)? {
        Expect::Any => Expect::Present,
        other => other,
    })
}

/// Reads `If-Match: VERSION` and `If-None-Match: *`.
fn precondition(headers: &HeaderMap) -> ApiResult<Expect> {
    if let Some(value) = headers.get(header::IF_MATCH) {
        let text = value.to_str().unwrap_or_default().trim().trim_matches('"');
        let version = text.parse().map_err(|_| {
            ApiError::bad_request(format!("If-Match must be a version, got `{text}`"))
        })?;
        return Ok(Expect::Version(version));
    }
    match headers.get(header::IF_NONE_MATCH) {
        Some(value) if value == "*" => Ok(Expect::Absent),
        Some(_) => Err(ApiError::bad_request(
            "If-None-Match takes only `*` (create only); to write over a version, use If-Match",
        )),
        None => Ok(Expect::Any),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WhyQuery {
    /// The field (dotted path) to trace; every field when absent.
    field: Option<String>,
}

/// `GET .../objects/{name}/why`: where each field's value came from (see [`crate::why`]),
/// through the stores `principal` may read.
pub(super) async fn why(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store, name)): Path<(String, String, String)>,
    Query(query): Query<WhyQuery>,
) -> ApiResult<Json<Value>> {
    let store = store_ref(&knactor, &store)?;
    let exchange = state.exchange_for(&principal, ("get", &store))?;
    let reach = Reach { state: &state, principal: &principal };
    let trails = crate::why::trace(&*exchange, &reach, &store, &name, query.field.as_deref());
    let trails = trails.await.map_err(|e| match e {
        WhyError::Exchange(e) => e.into(),
        e @ (WhyError::NoObject { .. } | WhyError::NoField { .. }) => ApiError::not_found(e),
    })?;
    Ok(Json(json!({ "store": store.to_string(), "name": name, "fields": trails })))
}

/// The stores a principal may read, as a trail reaches them.
struct Reach<'a> {
    state: &'a ApiState,
    principal: &'a Principal,
}

impl crate::why::Reach for Reach<'_> {
    fn exchange(&self, store: &StoreRef) -> Result<Arc<dyn ObjectExchange>, String> {
        let reached = self.state.exchange_for(self.principal, ("get", store));
        reached.map_err(|e| match e.status() {
            StatusCode::FORBIDDEN => format!("hidden: {} may not read {store}", self.principal),
            _ => e.body()["error"].as_str().unwrap_or_default().to_owned(),
        })
    }
}
