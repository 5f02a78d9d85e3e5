//! `knactor deploy --apply`: the files' objects sent to the cluster of the kubeconfig (read as
//! kubectl reads it), by server-side apply with the field manager `knactor`. The CRDs go
//! first, and nothing else goes until each is Established; then the stores' seed objects are
//! created through the apiserver exchange, as `knactor up` creates them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use data_exchange::backoff::Backoff;
use data_exchange::{KubeExchange, ObjectExchange as _};
use knactor::AppConfig;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde_json::Value;

use super::manifests::ManifestFile;

/// The field manager of every object applied.
const FIELD_MANAGER: &str = "knactor";
/// How long a new CRD, and then its resources, may take to be served.
const SERVED_TIMEOUT: Duration = Duration::from_secs(60);
/// The waits between two looks at something not served yet.
const POLL: Backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(500));

/// Applies every object of `files`, printing one line per object, then creates the seed
/// objects of `app`'s stores in `namespace`.
pub(super) async fn apply(
    files: &[ManifestFile],
    app: &AppConfig,
    namespace: &str,
) -> anyhow::Result<()> {
    let config = kube::Config::infer().await.context("reading the kubeconfig")?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone()).context("connecting to the apiserver")?;
    client
        .apiserver_version()
        .await
        .with_context(|| format!("cannot reach the apiserver at {server}"))?;
    let mut cluster = Cluster { client, resources: HashMap::new() };
    let docs = files.iter().flat_map(|f| &f.docs);
    let (crds, rest): (Vec<_>, Vec<_>) =
        docs.partition(|doc| doc["kind"] == "CustomResourceDefinition");
    for crd in &crds {
        cluster.apply(crd).await?;
    }
    for crd in &crds {
        cluster.established(crd["metadata"]["name"].as_str().unwrap_or_default()).await?;
    }
    for doc in rest {
        cluster.apply(doc).await?;
    }
    seed(config, app, namespace).await
}

/// Creates the objects `app`'s stores start with where they are absent, as `knactor up` does.
async fn seed(config: kube::Config, app: &AppConfig, namespace: &str) -> anyhow::Result<()> {
    let exchange = KubeExchange::with_config(config, Some(namespace.to_owned())).await?;
    let mut seeds = 0;
    for knactor in &app.knactors {
        for store in knactor.spec.stores.iter().filter(|s| !s.seeds.is_empty()) {
            exchange.register(&store.store_ref(&knactor.metadata.name), &store.schema).await?;
            seeds += store.seeds.len();
        }
    }
    knactor::app::seed(app, &exchange).await?;
    println!("{seeds} seed objects present");
    Ok(())
}

/// The cluster, with the resources of the kinds written so far.
struct Cluster {
    client: kube::Client,
    resources: HashMap<GroupVersionKind, (ApiResource, Scope)>,
}

impl Cluster {
    /// Applies `doc` and says so.
    async fn apply(&mut self, doc: &Value) -> anyhow::Result<()> {
        let object: DynamicObject =
            serde_json::from_value(doc.clone()).context("a manifest is not an object")?;
        let types = object.types.as_ref().context("a manifest has no apiVersion or kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        let name = object.metadata.name.clone().context("a manifest has no metadata.name")?;
        let api = self.api(&gvk, object.metadata.namespace.as_deref()).await?;
        let what = format!("{} {name}", gvk.kind);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(doc))
            .await
            .with_context(|| format!("applying {what}"))?;
        println!("{what} applied");
        Ok(())
    }

    /// The API of `gvk`'s objects, in `namespace` if they are namespaced.
    async fn api(
        &mut self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
    ) -> anyhow::Result<Api<DynamicObject>> {
        if !self.resources.contains_key(gvk) {
            let found = until_served(|| discovery::pinned_kind(&self.client, gvk))
                .await
                .with_context(|| format!("finding the resource of {gvk:?}"))?;
            self.resources.insert(gvk.clone(), (found.0, found.1.scope));
        }
        let (resource, scope) = &self.resources[gvk];
        let client = self.client.clone();
        Ok(match (scope, namespace) {
            (Scope::Namespaced, Some(namespace)) => {
                Api::namespaced_with(client, namespace, resource)
            }
            (Scope::Namespaced, None) => bail!("a {} needs metadata.namespace", gvk.kind),
            (Scope::Cluster, _) => Api::all_with(client, resource),
        })
    }

    /// Waits until the CustomResourceDefinition `name` is Established: its resources served.
    async fn established(&mut self, name: &str) -> anyhow::Result<()> {
        let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
        let crds = self.api(&gvk, None).await?;
        let deadline = Instant::now() + SERVED_TIMEOUT;
        let mut poll = POLL;
        loop {
            let crd = crds.get(name).await.with_context(|| format!("reading the CRD {name}"))?;
            let conditions = crd.data["status"]["conditions"].as_array().cloned();
            let established = conditions.unwrap_or_default().iter().any(|condition| {
                condition["type"] == "Established" && condition["status"] == "True"
            });
            if established {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the CRD {name} is not Established after {SERVED_TIMEOUT:?}");
            }
            poll.wait().await;
        }
    }
}

/// Runs `request` again while it is answered 404 (a new CRD's resources take a moment to be
/// served), up to a deadline.
async fn until_served<T, F, Fut>(mut request: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let deadline = Instant::now() + SERVED_TIMEOUT;
    let mut poll = POLL;
    loop {
        match request().await {
            Err(kube::Error::Api(status)) if status.code == 404 && Instant::now() < deadline => {
                poll.wait().await;
            }
            result => return result,
        }
    }
}
