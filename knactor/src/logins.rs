//! How each principal of an app reaches the exchanges (DESIGN §11). A knactor's reconciler, a
//! Cast spec's integrator and a Sync spec's flows act through exchanges of their own: on Redis,
//! connections as the principal's own ACL user, which Redis holds to the stores of its rights
//! (`APP/PRINCIPAL`, `APP@DB/PRINCIPAL` on a database other than 0, created, or brought up to
//! date, by the process that starts the principal; its password is kept beside the API's
//! tokens, in `TOKEN_DIR/redis/`, 0600). Log stores are reached so when the Log exchange is the
//! Object exchange's Redis. Elsewhere, and on Redis with pushdown (whose edges write their
//! targets inside the writes of their sources, as the writer), they share the app's
//! connections; the scoped handles hold them to their rights in process either way.

#[cfg(feature = "redis")]
use std::collections::BTreeMap;
#[cfg(feature = "redis")]
use std::path::PathBuf;
use std::sync::Arc;

use data_exchange::access::{Grant, Rights};
use data_exchange::{ExchangeError, LogExchange, ObjectExchange};

use crate::AppConfig;
use crate::api::TokenError;
use crate::app::Exchanges;
use crate::manifest::KnactorManifest;

use integrators::cast::Schemas;

/// Why a principal's exchange could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Its password could not be read or created.
    #[error(transparent)]
    Secret(#[from] TokenError),
    /// The exchange refused the user or the connection.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// The rights of knactor `knactor`: everything on its own stores, Object and Log.
pub fn knactor_rights(knactor: &KnactorManifest) -> Rights {
    let name = &knactor.metadata.name;
    let mut rights = Rights::new(format!("knactor:{name}"));
    for store in &knactor.spec.stores {
        rights.grant(store.store_ref(name), Grant::owner());
    }
    rights
}

/// Opens the exchange each principal acts through.
#[derive(Clone, Debug)]
pub struct Logins {
    shared: Exchanges,
    #[cfg(feature = "redis")]
    redis: Option<RedisLogins>,
    /// Where the principals' own Object exchanges are counted, if anywhere.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

#[cfg(feature = "redis")]
#[derive(Clone)]
struct RedisLogins {
    url: String,
    admin: Arc<data_exchange::RedisExchange>,
    app: RedisApp,
    /// The app's Object stores (more as knactors' manifests applied live add some).
    schemas: crate::knactors::StoreSchemaMap,
    /// The app's Log stores, when the Log exchange is this server (`url`).
    log_schemas: crate::knactors::StoreSchemaMap,
    /// Whether the Log exchange is this server.
    logs_here: bool,
    /// The rights each user this process made was given last, by principal: kept while the
    /// server runs (see [`keep_users`]). Held across a change of a user and its record, so
    /// that a user is never given back rights it has lost since.
    given: Arc<tokio::sync::Mutex<BTreeMap<String, Rights>>>,
}

/// Whose users a process makes: the app's name and database, which their names start with, and
/// where their passwords are kept.
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
struct RedisApp {
    name: String,
    db: i64,
    secrets: PathBuf,
}

#[cfg(feature = "redis")]
impl RedisApp {
    /// The user and password of `principal`, its password created at the first use.
    fn credential(
        &self,
        principal: &str,
    ) -> Result<data_exchange::redis::acl::Credential, TokenError> {
        let file = principal.replace(':', "-");
        let password = crate::api::Tokens::secret(&self.secrets, &file)?;
        let user = redis_user(&self.name, self.db, principal);
        Ok(data_exchange::redis::acl::Credential { user, password })
    }
}

impl Logins {
    /// Every principal shares `shared`.
    pub fn shared(shared: Exchanges) -> Self {
        Logins {
            shared,
            #[cfg(feature = "redis")]
            redis: None,
            metrics: None,
        }
    }

    /// Counts the writes and watches of the principals' own Object exchanges in `metrics`
    /// (the shared one is counted where it was made, see [`crate::metered`]).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// On the Redis exchange at `url` (an administrator's: it creates the users), each
    /// principal of `app` connects as its own user, [`redis_user`] (so that apps sharing a
    /// server keep apart), whose password is kept in the app's token directory; its
    /// connections know the app's stores it may reach, Log stores too when `log_url` is `url`.
    /// The function library is loaded here, once. Any other `url` shares `shared`.
    pub async fn per_user(
        shared: Exchanges,
        url: &str,
        log_url: &str,
        app: &AppConfig,
    ) -> Result<Self, LoginError> {
        #[cfg(feature = "redis")]
        if is_redis(url) {
            let admin = Arc::new(data_exchange::RedisExchange::connect(url).await?);
            admin.load_functions().await?;
            if admin.default_user_is_open().await? {
                tracing::warn!(
                    "Redis's `default` user needs no password: any client, a principal included, can act as it; give it one (requirepass, or an aclfile) for the per-principal users to hold (see docs/security.md)"
                );
            }
            let given = Arc::default();
            let users = RedisApp {
                name: app.name().to_owned(),
                db: admin.database(),
                secrets: secrets_dir(app),
            };
            tokio::spawn(keep_users(admin.clone(), Arc::downgrade(&given), users.clone()));
            let redis = RedisLogins {
                given,
                url: url.to_owned(),
                admin,
                app: users,
                schemas: Arc::new(app.stores().into()),
                log_schemas: Arc::new(
                    if log_url == url { app.log_stores() } else { Default::default() }.into(),
                ),
                logs_here: log_url == url,
            };
            return Ok(Logins { shared, redis: Some(redis), metrics: None });
        }
        let _ = (url, log_url, app);
        Ok(Self::shared(shared))
    }

    /// Every principal shares `shared`, and on the Redis exchange at `url` the ACL users of
    /// `app`'s principals are deleted (as an administrator): pushed-down edges write their
    /// targets as the writer of their source, which a user of its own may not be (see
    /// docs/security.md).
    pub async fn shared_for_pushdown(
        shared: Exchanges,
        url: &str,
        app: &AppConfig,
    ) -> Result<Self, LoginError> {
        #[cfg(feature = "redis")]
        if is_redis(url) {
            let admin = data_exchange::RedisExchange::connect(url).await?;
            let user = |p: &crate::api::Principal| {
                redis_user(app.name(), admin.database(), &p.to_string())
            };
            let users: Vec<String> = app.principals().iter().map(user).collect();
            admin.delete_users(&users).await?;
        }
        let _ = (url, app);
        Ok(Self::shared(shared))
    }

    /// The app's own Object exchange, which every store is reached through (the operator's).
    pub fn objects(&self) -> &Arc<dyn ObjectExchange> {
        &self.shared.objects
    }

    /// The app's own Log exchange (the operator's).
    pub fn log(&self) -> &Arc<dyn LogExchange> {
        &self.shared.log
    }

    /// The Object exchange the principal of `rights` acts through, its Redis user created or
    /// brought up to date with `rights` first.
    pub async fn exchange_for(
        &self,
        rights: &Rights,
    ) -> Result<Arc<dyn ObjectExchange>, LoginError> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            if redis.admin.runs_pushed_down_edges().await? {
                let principal = rights.principal();
                tracing::warn!(
                    principal,
                    "edges are pushed down into this Redis, and run as the writer of their source: {principal} shares the administrator's connection (see docs/security.md)"
                );
                return Ok(self.shared.objects.clone());
            }
            let credential = redis.login(rights).await?;
            let exchange =
                data_exchange::RedisExchange::connect_as(&redis.url, &credential).await?;
            // It knows every store of the app, so that a re-applied spec may reach others
            // (Redis holds it to those its rights name), with the schema Redis holds now,
            // which a knactor's manifest applied since may have changed.
            for (store, schema) in &redis.schemas() {
                let held = redis.admin.held_schema(store).await?;
                exchange.register(store, held.as_ref().map_or(schema, |(_, held)| held)).await?;
            }
            let exchange: Arc<dyn ObjectExchange> = Arc::new(exchange);
            return Ok(match &self.metrics {
                Some(metrics) => crate::metered::Metered::wrap(exchange, metrics.clone()),
                None => exchange,
            });
        }
        let _ = rights;
        Ok(self.shared.objects.clone())
    }

    /// The Log exchange the principal of `rights` acts through: on the Redis of the Object
    /// stores, a connection as its own user (brought up to date with `rights` first) when it
    /// may reach a Log store there; else the app's.
    pub async fn log_for(&self, rights: &Rights) -> Result<Arc<dyn LogExchange>, LoginError> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis
            && let log_schemas = redis.log_schemas()
            && reachable(&log_schemas, rights).next().is_some()
        {
            let credential = redis.login(rights).await?;
            let log = data_exchange::log::RedisLog::connect_as(&redis.url, &credential).await?;
            // Every Log store, as for Object stores.
            for (store, schema) in &log_schemas {
                log.register(store, schema).await?;
            }
            return Ok(Arc::new(log));
        }
        let _ = rights;
        Ok(self.shared.log.clone())
    }

    /// Ends `principal` (a shadow run's, once stopped): on Redis its user is deleted and no
    /// longer kept.
    pub async fn retire(&self, principal: &str) -> Result<(), LoginError> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let mut given = redis.given.lock().await;
            let user = redis_user(&redis.app.name, redis.app.db, principal);
            redis.admin.delete_users(&[user]).await?;
            given.remove(principal);
        }
        let _ = principal;
        Ok(())
    }

    /// Makes the principals' connections opened from now on know these stores too (added by a
    /// knactor's manifest applied live, and registered in the exchanges).
    pub fn add_stores(&self, objects: &Schemas, logs: &Schemas) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let add = |to: &crate::knactors::StoreSchemaMap, stores: &Schemas| {
                let mut schemas = to.write().unwrap_or_else(|e| e.into_inner());
                schemas.extend(stores.iter().map(|(s, schema)| (s.clone(), schema.clone())));
            };
            add(&redis.schemas, objects);
            if redis.logs_here {
                add(&redis.log_schemas, logs);
            }
        }
        let _ = (objects, logs);
    }

    /// Gives the principal of `rights` exactly these from now on (a re-applied spec's).
    pub async fn update(&self, rights: &Rights) -> Result<(), LoginError> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.login(rights).await?;
        }
        let _ = rights;
        Ok(())
    }
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold the administrator's password.
        f.debug_struct("RedisLogins").field("app", &self.app).finish_non_exhaustive()
    }
}

/// How often [`keep_users`] looks for users the server lost.
#[cfg(feature = "redis")]
const KEEP_USERS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives back to the server the users of `given` (principal -> rights) it lost, and the
/// function library if it lost that: a Redis restarted without an `aclfile` forgets its
/// users, and without persistence its functions, and the principals' connections could not
/// log in, or write, again. Looks every [`KEEP_USERS_EVERY`] until the logins that made the users are
/// gone.
#[cfg(feature = "redis")]
async fn keep_users(
    admin: Arc<data_exchange::RedisExchange>,
    given: std::sync::Weak<tokio::sync::Mutex<BTreeMap<String, Rights>>>,
    app: RedisApp,
) {
    loop {
        tokio::time::sleep(KEEP_USERS_EVERY).await;
        let Some(given) = given.upgrade() else { return };
        let given = given.lock().await;
        if given.is_empty() {
            continue;
        }
        // The server may be down for a while: try again at the next look. Users deleted
        // because edges are pushed down into the server stay deleted.
        let Ok(users) = admin.users().await else { continue };
        if admin.runs_pushed_down_edges().await.unwrap_or(true) {
            continue;
        }
        let lost = given.iter().filter_map(|(principal, rights)| {
            let user = redis_user(&app.name, app.db, principal);
            (!users.contains(&user)).then_some((principal, rights, user))
        });
        let lost: Vec<_> = lost.collect();
        // A server restarted without persistence has lost its functions, users or not.
        if !admin.functions_loaded().await.unwrap_or(true) {
            match admin.load_functions().await {
                Ok(()) => tracing::warn!(
                    "the Redis server had lost the function library: loaded it again"
                ),
                Err(error) => tracing::warn!(%error, "cannot load the function library again"),
            }
        }
        for (principal, rights, user) in lost {
            let restored = async {
                let credential = app.credential(principal)?;
                admin.set_user(&credential, rights).await?;
                Ok::<_, LoginError>(())
            };
            match restored.await {
                Ok(()) => tracing::warn!(
                    user,
                    "the Redis server had lost this user (restarted without an aclfile?): created it again"
                ),
                Err(error) => {
                    tracing::warn!(user, %error, "cannot create the lost Redis user again")
                }
            }
        }
    }
}

/// The stores of `schemas` that `rights` reach, with their schemas.
#[cfg(feature = "redis")]
fn reachable<'a>(
    schemas: &'a integrators::cast::Schemas,
    rights: &'a Rights,
) -> impl Iterator<Item = (&'a data_exchange::StoreRef, &'a serde_json::Value)> {
    rights.grants().filter_map(|(store, _)| schemas.get_key_value(store))
}

/// Whether `url` names a Redis exchange.
#[cfg(feature = "redis")]
fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

#[cfg(feature = "redis")]
impl RedisLogins {
    /// The app's Object stores, as now.
    fn schemas(&self) -> Schemas {
        self.schemas.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The app's Log stores on this server, as now.
    fn log_schemas(&self) -> Schemas {
        self.log_schemas.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The credential of the principal of `rights`, its user created, or brought up to date
    /// with `rights`, first.
    async fn login(
        &self,
        rights: &Rights,
    ) -> Result<data_exchange::redis::acl::Credential, LoginError> {
        let credential = self.app.credential(rights.principal())?;
        let mut given = self.given.lock().await;
        self.admin.set_user(&credential, rights).await?;
        given.insert(rights.principal().to_owned(), rights.clone());
        Ok(credential)
    }
}

/// The Redis user of `principal` of the app `app` on database `db`: `retail/knactor:checkout`
/// on database 0, `retail@3/knactor:checkout` on database 3, so that apps of one name on two
/// databases keep apart.
#[cfg(feature = "redis")]
pub fn redis_user(app: &str, db: i64, principal: &str) -> String {
    match db {
        0 => format!("{app}/{principal}"),
        db => format!("{app}@{db}/{principal}"),
    }
}

/// Where an app keeps its principals' Redis passwords: `TOKEN_DIR/redis/`.
#[cfg(feature = "redis")]
fn secrets_dir(app: &AppConfig) -> PathBuf {
    app.token_dir().join("redis")
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn a_redis_user_names_its_app_its_database_unless_0_and_its_principal() {
        assert_eq!(redis_user("retail", 0, "knactor:checkout"), "retail/knactor:checkout");
        assert_eq!(redis_user("retail", 3, "integrator:email"), "retail@3/integrator:email");
        assert_ne!(redis_user("shop", 1, "knactor:a"), redis_user("shop", 2, "knactor:a"));
    }
}
