//! A deny matrix: one principal's connection tried on every operation on every store, and on
//! every field of every store (read, and written), each cell checked against the principal's
//! [`Rights`]. A cell that is not as the rights say fails the test, naming it; the tally says
//! how many cells were allowed and denied.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::RedisExchange;
use crate::access::{Fields, Grant, Rights, ScopedExchange};
use crate::error::ExchangeError;
use crate::object::{ObjectExchange, Write};
use crate::redis::acl::Credential;
use crate::store::StoreRef;

/// Get, list, watch, a read of each field (`see`: whether a get shows it), and the writes: a
/// put and a patch per field, and a delete.
const OPERATIONS: [&str; 7] = ["get", "list", "watch", "see", "put", "patch", "delete"];

/// The object every cell works on, reset before each.
const OBJECT: &str = "probe";

/// Whose rules the expectations follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcer {
    /// A server that sees keys only (Redis ACLs): a store is read, or read and written, whole,
    /// every field of it.
    Keys,
    /// A handle held to the whole rights (`ScopedExchange`): fields, deletes and objects too.
    Rights,
}

/// How many cells were allowed and denied, all as expected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Cells that worked.
    pub allowed: usize,
    /// Cells refused with [`ExchangeError::Denied`] naming the principal, or fields left out
    /// of what a get showed.
    pub denied: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.allowed += other.allowed;
        self.denied += other.denied;
    }
}

/// Tries every operation on `stores` (each with its top-level fields) through `exchange`,
/// acting as the principal of `rights`, with `admin` (which may do everything) resetting the
/// object tried before each cell. Writes carry values of any type, so the stores should be
/// registered with schemas that take any object.
pub async fn probe(
    exchange: &dyn ObjectExchange,
    admin: &dyn ObjectExchange,
    rights: &Rights,
    stores: &BTreeMap<StoreRef, Vec<String>>,
    enforcer: Enforcer,
) -> Tally {
    let mut tally = Tally::default();
    for (store, fields) in stores {
        let start: Map<String, Value> = fields.iter().map(|f| (f.clone(), json!(0))).collect();
        let grant = rights.on(store);
        for operation in OPERATIONS {
            let touched: Vec<Option<&String>> = match operation {
                "see" | "put" | "patch" => fields.iter().map(Some).collect(),
                _ => vec![None],
            };
            for field in touched {
                admin.write(store, Write::put(OBJECT, Value::Object(start.clone()))).await.unwrap();
                let reads = grant.is_some_and(Grant::reads);
                // A handle hides the objects its grant does not cover; keys are whole stores.
                let covers = enforcer == Enforcer::Keys
                    || grant.is_some_and(|g| g.objects.as_ref().is_none_or(|o| o.contains(OBJECT)));
                let allowed = match (operation, enforcer) {
                    ("list" | "watch", _) => reads,
                    ("get", _) | ("see", Enforcer::Keys) => reads && covers,
                    ("see", Enforcer::Rights) => {
                        let seen = grant.and_then(|g| g.read.as_ref());
                        covers && seen.is_some_and(|s| field.is_some_and(|f| s.allows(f)))
                    }
                    (_, Enforcer::Keys) => grant.is_some_and(|g| g.write.is_some() || g.delete),
                    ("delete", Enforcer::Rights) => covers && grant.is_some_and(|g| g.delete),
                    (_, Enforcer::Rights) => {
                        let writes = grant.and_then(|g| g.write.as_ref());
                        covers
                            && writes.is_some_and(|w| match w {
                                Fields::All => true,
                                Fields::Only(only) => field.is_some_and(|f| only.contains(f)),
                            })
                    }
                };
                let outcome = match (operation, field) {
                    ("get", _) => exchange.get(store, OBJECT).await.map(drop),
                    ("see", Some(field)) => match exchange.get(store, OBJECT).await {
                        Ok(Some(object)) if object.data.get(field).is_some() => Ok(()),
                        Ok(shown) => {
                            // Left out: a denial of that field, which no error names.
                            let left_out = shown.is_some() && !allowed;
                            assert!(
                                left_out,
                                "{} see {store} .{field}: {shown:?}",
                                rights.principal()
                            );
                            tally.denied += 1;
                            continue;
                        }
                        Err(e) => Err(e),
                    },
                    ("list", _) => exchange.list(store).await.map(drop),
                    ("watch", _) => exchange.watch(store, 0).await.map(drop),
                    ("put", Some(field)) => {
                        // The whole object as the principal sees it, with the field changed.
                        let seen = grant.and_then(|g| g.read.as_ref());
                        let sees = |f: &String| {
                            enforcer == Enforcer::Keys || seen.is_some_and(|s| s.allows(f))
                        };
                        let mut data = start.clone();
                        data.retain(|f, _| sees(f));
                        data.insert(field.clone(), json!(1));
                        exchange
                            .write(store, Write::put(OBJECT, Value::Object(data)))
                            .await
                            .map(drop)
                    }
                    ("patch", Some(field)) => {
                        let patch = json!({ field.as_str(): 1 });
                        exchange.write(store, Write::patch(OBJECT, patch)).await.map(drop)
                    }
                    _ => exchange.write(store, Write::delete(OBJECT)).await.map(drop),
                };
                let principal = rights.principal();
                let cell = format!(
                    "{principal} {operation} {store}{}",
                    field.map(|f| format!(" .{f}")).unwrap_or_default()
                );
                match (outcome, allowed) {
                    (Ok(()), true) => tally.allowed += 1,
                    (Err(ExchangeError::Denied(denial)), false) => {
                        assert_eq!(denial.principal.as_deref(), Some(principal), "{cell}");
                        tally.denied += 1;
                    }
                    (outcome, allowed) => {
                        let expected = if allowed { "allowed" } else { "denied" };
                        panic!("{cell}: expected {expected}, got {outcome:?}")
                    }
                }
            }
        }
    }
    tally
}

/// Probes each of `principals` on the Redis server at `url`, connected as an ACL user of its
/// own that `admin` creates (`stores` registered there with a schema any object meets): as
/// that user alone ([`Enforcer::Keys`]), then behind a handle held to its rights
/// ([`Enforcer::Rights`]). Returns the two tallies, in that order.
pub async fn probe_redis_users(
    url: &str,
    admin: &RedisExchange,
    principals: &[Rights],
    stores: &BTreeMap<StoreRef, Vec<String>>,
) -> (Tally, Tally) {
    let (mut by_redis, mut by_handle) = (Tally::default(), Tally::default());
    for rights in principals {
        let principal = rights.principal();
        let credential = Credential { user: principal.into(), password: format!("{principal}!") };
        admin.set_user(&credential, rights).await.unwrap();
        let user = Arc::new(RedisExchange::connect_as(url, &credential).await.unwrap());
        for store in stores.keys() {
            user.register(store, &json!({"type": "object"})).await.unwrap();
        }
        by_redis += probe(&*user, admin, rights, stores, Enforcer::Keys).await;
        let handle = ScopedExchange::new(user, rights.clone());
        by_handle += probe(&handle, admin, rights, stores, Enforcer::Rights).await;
    }
    (by_redis, by_handle)
}
