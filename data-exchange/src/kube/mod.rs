//! The Kubernetes apiserver as an Object exchange.
//!
//! Each store is a CustomResourceDefinition made from its JSON Schema ([`crate::crd`]): group
//! `<knactor>.knactor.dev`, plural the store's name, namespaced. An object is a custom resource
//! in the exchange's namespace: `name` is `metadata.name` ([`names`] says how a name Kubernetes
//! does not accept is spelled), `data` is the resource's `.data`,
//! `version` its `resourceVersion` (etcd's revision: it increases with every write, though not
//! by one per store). Writes are validated here against the full JSON Schema first, then by the
//! apiserver against the structural one. A conditional write sends `resourceVersion` (409 is a
//! conflict); the apiserver takes no unconditional update of a custom resource, so a replace
//! or a merge patch reads, merges and writes conditionally on the version read. An unchanged
//! write is not made: the apiserver keeps the object and its version as they are. A watch
//! resumes from a version; `410 Gone` ends it as expired, to re-list. [`retry`] says which
//! failed requests are made again, and how a write that may have been made is found out. A
//! refusal is [`ExchangeError::Denied`], naming the principal: the subject of the bearer token
//! when it is a JWT (a ServiceAccount's), else the kubeconfig's user.

mod names;
mod retry;
mod server;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams, Preconditions,
};
use kube::config::{AuthInfo, KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::crd::{self, CrdNames, SCHEMA_ANNOTATION};
use crate::error::{Denial, ExchangeError, Result};
use crate::merge::{Known, Merged, merge_write};
use crate::object::{
    Expect, Migration, Object, ObjectExchange, ObjectList, StoreRef, WatchStream, Write, WriteOp,
    is_valid_name,
};
use crate::schema::{StoreSchema, next_state};
use crate::trace::TraceParent;

pub use server::KubeApiserver;

/// The field manager named in every write.
const FIELD_MANAGER: &str = "knactor";

/// The annotation of an object that holds the trace context of the write that made it.
const TRACE_ANNOTATION: &str = "knactor.dev/traceparent";
/// How long `register` waits for a new CRD to be served.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The Object exchange on a Kubernetes apiserver.
pub struct KubeExchange {
    client: kube::Client,
    namespace: String,
    /// Who the apiserver knows the exchange as, when that can be told.
    principal: Option<String>,
    stores: RwLock<HashMap<StoreRef, Arc<Registered>>>,
}

/// A registered store: its schema and the API of its custom resources.
#[derive(Debug)]
struct Registered {
    schema: StoreSchema,
    api: Api<DynamicObject>,
    resource: ApiResource,
}

impl std::fmt::Debug for KubeExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeExchange").field("namespace", &self.namespace).finish_non_exhaustive()
    }
}

impl KubeExchange {
    /// Connects as `url` says: `kube` reads the kubeconfig as kubectl does (`KUBECONFIG`, then
    /// `~/.kube/config`, then the in-cluster service account); `kube://?context=C&namespace=NS`
    /// picks a context and a namespace.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = KubeUrl::parse(url)?;
        let kube_options =
            KubeConfigOptions { context: options.context.clone(), ..Default::default() };
        let config = if options.context.is_some() {
            kube::Config::from_kubeconfig(&kube_options).await.map_err(config_error)?
        } else {
            kube::Config::infer().await.map_err(config_error)?
        };
        let user = Kubeconfig::read().ok().and_then(|k| kubeconfig_user(&k, &kube_options));
        Self::open(config, options.namespace, user).await
    }

    /// Connects with `config`, in `namespace` (default: the config's namespace).
    pub async fn with_config(config: kube::Config, namespace: Option<String>) -> Result<Self> {
        Self::open(config, namespace, None).await
    }

    /// Connects with the kubeconfig file at `path`, in `namespace`.
    pub async fn with_kubeconfig(path: &std::path::Path, namespace: &str) -> Result<Self> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(config_error)?;
        let user = kubeconfig_user(&kubeconfig, &Default::default());
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(config_error)?;
        Self::open(config, Some(namespace.to_owned()), user).await
    }

    /// Connects with `config` as the kubeconfig's `user` (when one is known).
    async fn open(
        config: kube::Config,
        namespace: Option<String>,
        user: Option<String>,
    ) -> Result<Self> {
        let namespace = namespace.unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let principal = token_subject(&config.auth_info)
            .or_else(|| user.map(|user| format!("kubeconfig user `{user}`")));
        let client = kube::Client::try_from(config).map_err(kube_error)?;
        let exchange = KubeExchange { client, namespace, principal, stores: RwLock::default() };
        exchange.reach(&server).await?;
        Ok(exchange)
    }

    /// The namespace holding the objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Checks the apiserver answers and takes the exchange's credentials, with one clear error
    /// naming it when it does not.
    async fn reach(&self, server: &str) -> Result<()> {
        let error = match self.client.apiserver_version().await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(401) => format!(
                "the apiserver at {server} does not accept the credentials of {} (401 Unauthorized)",
                self.principal.as_deref().unwrap_or("the kubeconfig's user")
            ),
            Err(e) => format!("cannot reach the apiserver at {server}: {e}"),
        };
        Err(ExchangeError::Backend { backend: "kube", error: error.into() })
    }

    /// The error of `e`: [`ExchangeError::Denied`] naming the principal for a refusal.
    fn denied_or(
        &self,
        e: kube::Error,
        store: &StoreRef,
        operation: &'static str,
    ) -> ExchangeError {
        denied_or(e, store, operation, self.principal.as_deref())
    }

    fn registered(&self, store: &StoreRef) -> Result<Arc<Registered>> {
        let stores = self.stores.read().expect("store map poisoned");
        stores.get(store).cloned().ok_or_else(|| ExchangeError::UnknownStore(store.clone()))
    }

    /// Registers `store` (see [`ObjectExchange::register`]), changing the CRD of another
    /// schema when `evolve`; returns the CRD's generation.
    async fn hold(&self, store: &StoreRef, schema: &Value, evolve: bool) -> Result<u64> {
        let compiled = StoreSchema::compile(store, schema)?;
        let names = CrdNames::of(store).map_err(|e| ExchangeError::InvalidSchema {
            store: store.clone(),
            message: e.to_string(),
        })?;
        self.ensure_namespace(store).await?;
        let resource = ApiResource {
            group: names.group.clone(),
            version: names.version.to_owned(),
            api_version: names.api_version(),
            kind: names.kind.clone(),
            plural: names.plural.clone(),
        };
        let api = Api::namespaced_with(self.client.clone(), &self.namespace, &resource);
        let check = evolve.then_some((&compiled, &api));
        let generation = self.apply_crd(store, schema, &names, check).await?;
        self.wait_served(store, &api).await?;
        let registered = Arc::new(Registered { schema: compiled, api, resource });
        self.stores.write().expect("store map poisoned").insert(store.clone(), registered);
        Ok(generation)
    }

    /// The objects of `store`, listed through `api`.
    async fn list_with(&self, store: &StoreRef, api: &Api<DynamicObject>) -> Result<ObjectList> {
        let params = ListParams::default();
        let list = retry::read(|| api.list(&params))
            .await
            .map_err(|e| self.denied_or(e, store, "list"))?;
        let version = parse_version(store, list.metadata.resource_version.as_deref())?;
        let mut items =
            list.items.into_iter().map(|o| to_object(store, o)).collect::<Result<Vec<_>>>()?;
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ObjectList { version, items })
    }

    /// Creates the namespace when it is missing; a principal not allowed to is fine as long
    /// as the namespace exists.
    async fn ensure_namespace(&self, store: &StoreRef) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta { name: Some(self.namespace.clone()), ..Default::default() },
            ..Default::default()
        };
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(status(&e), Some(409 | 403)) => Ok(()),
            Err(e) => Err(self.denied_or(e, store, "register (create its namespace)")),
        }
    }

    /// Applies the store's CRD when there is none, then waits until it is established; a CRD
    /// there already of another schema is refused unless `evolve` gives the new schema
    /// compiled and the store's API, to check the objects stored against it before the CRD is
    /// changed. Returns the CRD's generation (0 when the principal may not read CRDs: the
    /// operator applied them).
    async fn apply_crd(
        &self,
        store: &StoreRef,
        schema: &Value,
        names: &CrdNames,
        evolve: Option<(&StoreSchema, &Api<DynamicObject>)>,
    ) -> Result<u64> {
        let definition = crd::custom_resource_definition(store, schema).map_err(|e| {
            ExchangeError::InvalidSchema { store: store.clone(), message: e.to_string() }
        })?;
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let name = names.crd_name();
        let current = match crds.get_opt(&name).await {
            Ok(current) => current,
            Err(e) if status(&e) == Some(403) => return Ok(0),
            Err(e) => {
                return Err(self.denied_or(
                    e,
                    store,
                    "register (read its CustomResourceDefinition)",
                ));
            }
        };
        let wanted = &definition["metadata"]["annotations"][SCHEMA_ANNOTATION];
        let held = current.as_ref().map(|crd| {
            let annotations = crd.metadata.annotations.as_ref();
            let schema = annotations.and_then(|a| a.get(SCHEMA_ANNOTATION)).map(|s| s.as_str());
            (schema == wanted.as_str(), crd.metadata.generation.unwrap_or(0).unsigned_abs())
        });
        match (held, evolve) {
            (Some((true, _)), _) => {}
            (Some((false, version)), None) => {
                return Err(ExchangeError::SchemaDiffers { store: store.clone(), version });
            }
            (Some((false, _)), Some((next, api))) => {
                let stored = self.list_with(store, api).await?;
                next.fit(store, stored.items.iter().map(|o| (o.name.as_str(), &o.data)), None)?;
                self.patch_crd(store, &crds, &name, &definition).await?;
            }
            (None, _) => self.patch_crd(store, &crds, &name, &definition).await?,
        }
        let deadline = Instant::now() + ESTABLISH_TIMEOUT;
        loop {
            let crd = crds.get(&name).await.map_err(kube_error)?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Established" && c.status == "True") {
                return Ok(crd.metadata.generation.unwrap_or(0).unsigned_abs());
            }
            if Instant::now() > deadline {
                return Err(ExchangeError::Backend {
                    backend: "kube",
                    error: format!("{name} not established after {ESTABLISH_TIMEOUT:?}").into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Applies `definition`, the CRD named `name` of `store`.
    async fn patch_crd(
        &self,
        store: &StoreRef,
        crds: &Api<CustomResourceDefinition>,
        name: &str,
        definition: &Value,
    ) -> Result<()> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        crds.patch(name, &params, &Patch::Apply(definition)).await.map_err(|e| {
            self.denied_or(e, store, "register (apply its CustomResourceDefinition)")
        })?;
        Ok(())
    }

    /// Waits until the store's resources answer a list (a new CRD takes a moment to be served).
    async fn wait_served(&self, store: &StoreRef, api: &Api<DynamicObject>) -> Result<()> {
        let deadline = Instant::now() + ESTABLISH_TIMEOUT;
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => return Ok(()),
                Err(e) if status(&e) == Some(404) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // A principal without rights on the store (a knactor's own ServiceAccount, for
                // another knactor's store): registered all the same, each use is `Denied`.
                Err(e) if status(&e) == Some(403) => return Ok(()),
                Err(e) => return Err(self.denied_or(e, store, "list")),
            }
        }
    }

    /// Creates `name` with `data` (`Expect::Absent`) or replaces it at exactly the version
    /// expected (`Expect::Version`): the apiserver takes no unconditional update of a custom
    /// resource, so a caller with any other precondition reads first.
    async fn put(
        &self,
        store: &StoreRef,
        reg: &Registered,
        name: &str,
        data: Value,
        expect: Expect,
    ) -> Result<Arc<Object>> {
        let params =
            &PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let resource_name = names::resource_name(name);
        let write_id = retry::write_id();
        let mut resource = names::resource(name, &reg.resource).data(json!({ "data": data }));
        resource.annotations_mut().insert(retry::WRITE_ID_ANNOTATION.into(), write_id.clone());
        if let Some(trace) = crate::trace::current() {
            resource.annotations_mut().insert(TRACE_ANNOTATION.into(), trace.to_string());
        }
        let (api, resource_name, write_id) = (&reg.api, resource_name.as_str(), &write_id);
        let made = move || async move {
            let found = api.get_opt(resource_name).await?;
            Ok(found.filter(|found| retry::made_by(found, write_id)))
        };
        let written = match expect {
            Expect::Version(expected) => {
                resource.metadata.resource_version = Some(expected.to_string());
                let replace = || api.replace(resource_name, params, &resource);
                match retry::write(replace, made).await {
                    Ok(written) => written,
                    Err(e) if matches!(status(&e), Some(409 | 404)) => {
                        return Err(self.conflict(store, reg, name, expected).await);
                    }
                    Err(e) => return Err(self.denied_or(e, store, "update")),
                }
            }
            _ => {
                let create = || api.create(params, &resource);
                retry::write(create, made).await.map_err(|e| match status(&e) {
                    Some(409) => {
                        ExchangeError::AlreadyExists { store: store.clone(), name: name.into() }
                    }
                    _ => self.denied_or(e, store, "create"),
                })?
            }
        };
        to_object(store, written)
    }

    /// Deletes `name` as `write` says, conditionally on the version read (a concurrent write
    /// makes it read again unless the caller expected a version). The apiserver answers the
    /// deletion of a custom resource with a `Status` that carries no version: the version
    /// returned is the store's right after the deletion.
    async fn delete(
        &self,
        store: &StoreRef,
        reg: &Registered,
        write: &Write,
    ) -> Result<Arc<Object>> {
        let name = write.name.as_str();
        let resource_name = names::resource_name(name);
        loop {
            let current = self.read(store, reg, name).await?;
            write.check(store, current.as_ref().map(|o| o.version))?;
            let Some(current) = current else {
                return Err(ExchangeError::NotFound {
                    store: store.clone(),
                    name: name.to_owned(),
                });
            };
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: Some(current.version.to_string()),
                    uid: None,
                }),
                ..Default::default()
            };
            let (api, resource_name, params) = (&reg.api, resource_name.as_str(), &params);
            let delete = move || async move { api.delete(resource_name, params).await.map(drop) };
            // After a failure that leaves the deletion unknown: the object is gone (this
            // delete, or another, deleted it), or it is not.
            let made = move || async move {
                let found = api.get_opt(resource_name).await?;
                Ok(found.is_none().then_some(()))
            };
            match retry::write(delete, made).await {
                Ok(()) => {
                    let version = self.store_version(store, reg).await?.max(current.version + 1);
                    let data = current.data.clone();
                    let (name, trace) = (name.to_owned(), None);
                    return Ok(Arc::new(Object { name, version, data, trace }));
                }
                Err(e) if matches!(status(&e), Some(409 | 404)) => {
                    if let Expect::Version(expected) = write.expect {
                        return Err(self.conflict(store, reg, name, expected).await);
                    }
                }
                Err(e) => return Err(self.denied_or(e, store, "delete")),
            }
        }
    }

    /// The store's version: the revision of a consistent read of its resources.
    async fn store_version(&self, store: &StoreRef, reg: &Registered) -> Result<u64> {
        let params = ListParams::default().limit(1);
        let list = retry::read(|| reg.api.list_metadata(&params))
            .await
            .map_err(|e| self.denied_or(e, store, "list"))?;
        parse_version(store, list.metadata.resource_version.as_deref())
    }

    /// The conflict error of a write that expected `expected`, with the version found.
    async fn conflict(
        &self,
        store: &StoreRef,
        reg: &Registered,
        name: &str,
        expected: u64,
    ) -> ExchangeError {
        let actual = match self.read(store, reg, name).await {
            Ok(found) => found.map(|o| o.version),
            Err(e) => return e,
        };
        ExchangeError::Conflict { store: store.clone(), name: name.to_owned(), expected, actual }
    }

    async fn read(
        &self,
        store: &StoreRef,
        reg: &Registered,
        name: &str,
    ) -> Result<Option<Arc<Object>>> {
        let resource_name = names::resource_name(name);
        match retry::read(|| reg.api.get_opt(&resource_name)).await {
            Ok(found) => found.map(|o| to_object(store, o)).transpose(),
            Err(e) => Err(self.denied_or(e, store, "get")),
        }
    }
}

#[async_trait]
impl ObjectExchange for KubeExchange {
    async fn register(&self, store: &StoreRef, schema: &Value) -> Result<()> {
        self.hold(store, schema, false).await.map(drop)
    }

    /// A migration is refused: the apiserver cannot change a CRD and rewrite its objects in
    /// one step.
    async fn evolve(
        &self,
        store: &StoreRef,
        schema: &Value,
        migration: Option<&Migration>,
    ) -> Result<u64> {
        if migration.is_some() {
            let error = format!(
                "{store}: a schema change with a migration is not supported on Kubernetes (the apiserver cannot change a CRD and rewrite its objects in one step)"
            );
            return Err(ExchangeError::Backend { backend: "kube", error: error.into() });
        }
        self.hold(store, schema, true).await
    }

    async fn get(&self, store: &StoreRef, name: &str) -> Result<Option<Arc<Object>>> {
        let reg = self.registered(store)?;
        self.read(store, &reg, name).await
    }

    async fn list(&self, store: &StoreRef) -> Result<ObjectList> {
        self.list_with(store, &self.registered(store)?.api).await
    }

    async fn write(&self, store: &StoreRef, write: Write) -> Result<Arc<Object>> {
        if !is_valid_name(&write.name) {
            return Err(ExchangeError::InvalidName(write.name));
        }
        let reg = self.registered(store)?;
        match (&write.op, write.expect) {
            (WriteOp::Delete, _) => return self.delete(store, &reg, &write).await,
            (WriteOp::Put(_), expect @ (Expect::Absent | Expect::Version(_))) => {
                let data = next_state(&reg.schema, store, &write.name, None, &write.op)?;
                let data = canonical(data.expect("a put gives a state"));
                return self.put(store, &reg, &write.name, data, expect).await;
            }
            _ => {}
        }
        // Any other put, and every merge patch: read, merge and validate here, then write
        // conditionally on the version read, again after a concurrent write.
        let conflicts = if matches!(write.expect, Expect::Version(_)) { 1 } else { usize::MAX };
        let name = &write.name;
        let read = || self.read(store, &reg, name);
        let merge = |current: Option<&Object>| {
            write.check(store, current.map(|o| o.version))?;
            let next = next_state(&reg.schema, store, name, current.map(|o| &o.data), &write.op)?;
            Ok(canonical(next.expect("a put or patch gives a state")))
        };
        let put = |data, expect| self.put(store, &reg, name, data, expect);
        match merge_write(Known::Nothing, conflicts, read, merge, put).await? {
            Merged::Written(object) | Merged::Unchanged(object) => Ok(object),
        }
    }

    async fn watch(&self, store: &StoreRef, from: u64) -> Result<WatchStream> {
        let reg = self.registered(store)?;
        Ok(watch::watch(reg.api.clone(), store.clone(), from, self.principal.clone()))
    }

    async fn version(&self, store: &StoreRef) -> Result<u64> {
        let reg = self.registered(store)?;
        self.store_version(store, &reg).await
    }

    fn versions_per_store(&self) -> bool {
        false
    }
}

/// What `kube://?context=C&namespace=NS` names.
#[derive(Debug, Default, PartialEq)]
struct KubeUrl {
    context: Option<String>,
    namespace: Option<String>,
}

impl KubeUrl {
    fn parse(url: &str) -> Result<Self> {
        let unsupported = || ExchangeError::UnsupportedUrl(url.to_owned());
        if url == "kube" {
            return Ok(KubeUrl::default());
        }
        let query = url.strip_prefix("kube://").ok_or_else(unsupported)?;
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut parsed = KubeUrl::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("context", value)) if !value.is_empty() => {
                    parsed.context = Some(value.to_owned())
                }
                Some(("namespace", value)) if !value.is_empty() => {
                    parsed.namespace = Some(value.to_owned())
                }
                _ => return Err(unsupported()),
            }
        }
        Ok(parsed)
    }
}

/// The HTTP status of an error the apiserver answered with.
fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A refusal of the principal (`401`: of its credentials; `403`: of its rights) names the
/// store, the operation and the principal; anything else is the apiserver's failure.
fn denied_or(
    e: kube::Error,
    store: &StoreRef,
    operation: &'static str,
    principal: Option<&str>,
) -> ExchangeError {
    let reason = match &e {
        kube::Error::Api(status) if status.code == 401 => {
            "the apiserver does not accept its credentials (401 Unauthorized)".to_owned()
        }
        kube::Error::Api(status) if status.code == 403 => status.message.clone(),
        _ => return kube_error(e),
    };
    let principal = principal.map(str::to_owned);
    Denial { store: store.clone(), operation, field: None, principal, reason }.into()
}

/// The subject of the bearer token when it is a JWT: a ServiceAccount's token names it
/// `system:serviceaccount:NAMESPACE:NAME`.
fn token_subject(auth: &AuthInfo) -> Option<String> {
    use base64::Engine;
    let token = match (&auth.token, &auth.token_file) {
        (Some(token), _) => token.expose_secret().to_owned(),
        (None, Some(file)) => std::fs::read_to_string(file).ok()?,
        (None, None) => return None,
    };
    let payload = token.trim().split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&claims).ok()?;
    claims["sub"].as_str().map(str::to_owned)
}

/// The user of the context `options` names (default: the current one) in `kubeconfig`.
fn kubeconfig_user(kubeconfig: &Kubeconfig, options: &KubeConfigOptions) -> Option<String> {
    let context = options.context.as_deref().or(kubeconfig.current_context.as_deref())?;
    let named = kubeconfig.contexts.iter().find(|c| c.name == context)?;
    named.context.as_ref()?.user.clone()
}

fn kube_error(e: kube::Error) -> ExchangeError {
    ExchangeError::Backend { backend: "kube", error: Box::new(e) }
}

fn config_error(e: impl std::error::Error + Send + Sync + 'static) -> ExchangeError {
    ExchangeError::Backend { backend: "kube", error: format!("kubeconfig: {e}").into() }
}

fn parse_version(store: &StoreRef, version: Option<&str>) -> Result<u64> {
    let version = version.unwrap_or("0");
    version.parse().map_err(|_| {
        ExchangeError::Corrupt(format!("{store}: resourceVersion `{version}` is not a number"))
    })
}

/// `data` as the apiserver keeps it: a number with no fraction is an integer there (`12.0`
/// reads back as `12`), so a state compared with what the apiserver holds is written in that
/// form, or every write of it would look like a change.
fn canonical(mut data: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Number(n) => {
                if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0)
                    && f.abs() < 9.0e15
                {
                    *value = Value::from(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut data);
    data
}

/// The exchange's object of a custom resource.
fn to_object(store: &StoreRef, resource: DynamicObject) -> Result<Arc<Object>> {
    let version = parse_version(store, resource.metadata.resource_version.as_deref())?;
    let name = names::object_name(&resource.metadata);
    let annotations = resource.metadata.annotations.as_ref();
    let trace =
        annotations.and_then(|a| a.get(TRACE_ANNOTATION)).and_then(|t| TraceParent::parse(t));
    let data = match resource.data {
        Value::Object(mut fields) => fields.remove("data").unwrap_or_else(|| json!({})),
        _ => json!({}),
    };
    Ok(Arc::new(Object { name, version, data, trace }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_floats_are_written_as_the_integers_the_apiserver_reads_back() {
        let data = json!({"cost": 12.0, "rate": 1.5, "n": 3, "items": [{"qty": 2.0}]});
        assert_eq!(
            canonical(data),
            json!({"cost": 12, "rate": 1.5, "n": 3, "items": [{"qty": 2}]})
        );
    }

    #[test]
    fn urls_name_a_context_and_a_namespace() {
        assert_eq!(KubeUrl::parse("kube").unwrap(), KubeUrl::default());
        let url = KubeUrl::parse("kube://?context=kind-a&namespace=shop").unwrap();
        assert_eq!(url.context.as_deref(), Some("kind-a"));
        assert_eq!(url.namespace.as_deref(), Some("shop"));
        for bad in ["kube://?cluster=x", "kube://?namespace=", "kubes", "kube://?context"] {
            assert!(KubeUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
