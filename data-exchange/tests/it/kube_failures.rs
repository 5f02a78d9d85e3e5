//! The Kubernetes exchange when requests fail on their way or are refused: a write whose answer
//! is lost is found made (not reported as a conflict with itself), a lost list answer is asked
//! again, a watch the apiserver refuses ends with the refusal, and a principal whose credentials
//! are refused is named.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use data_exchange::testing::conformance::{counter_schema, next_event};
use data_exchange::testing::{KubeApiserver, fresh_namespace, shared_kube_apiserver};
use data_exchange::{ExchangeError, KubeExchange, ObjectExchange, StoreRef, WatchEvent, Write};
use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_is_lost_is_found_made() {
    let (proxy, exchange, store, _dir) = behind_a_cutter("lost-answer").await;
    let a = exchange.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();

    proxy.cut_next_answer();
    let b = exchange.write(&store, Write::create("b", json!({"count": 1}))).await;
    let b = b.expect("the create was made: it is not AlreadyExists");
    proxy.cut_next_answer();
    let increment = Write::put("a", json!({"count": 2})).if_version(a.version);
    let a2 = exchange.write(&store, increment).await.expect("made once: not a Conflict");
    assert_eq!(proxy.cuts(), 2, "both writes lost their answers");

    assert_eq!(exchange.get(&store, "a").await.unwrap(), Some(a2));
    assert_eq!(exchange.get(&store, "b").await.unwrap(), Some(b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_the_start_lists_again_when_the_answer_is_lost() {
    let (proxy, exchange, store, _dir) = behind_a_cutter("lost-list").await;
    let a = exchange.write(&store, Write::create("a", json!({"count": 1}))).await.unwrap();

    proxy.cut_next_answer();
    let mut watch = exchange.watch(&store, 0).await.unwrap();
    assert_eq!(next_event(&mut watch).await, WatchEvent::Added(a));
    assert_eq!(proxy.cuts(), 1, "the list lost its answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_the_apiserver_refuses_ends_with_the_refusal() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("refused-watch");
    let exchange = KubeExchange::with_kubeconfig(&server.kubeconfig(), &namespace).await.unwrap();
    // A store of its own: its CRD is removed under the watch (CRDs are cluster-wide).
    let store: StoreRef = "vanishing/things".parse().unwrap();
    exchange.register(&store, &counter_schema()).await.unwrap();
    let from = exchange.version(&store).await.unwrap();
    let mut watch = exchange.watch(&store, from).await.unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(admin_client(server).await);
    crds.delete("things.vanishing.knactor.dev", &DeleteParams::default()).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(60), watch.next()).await;
    match ended.expect("the watch ends within 60 s") {
        Some(Err(e @ ExchangeError::Backend { .. })) => {
            let message = e.to_string();
            assert!(message.contains("vanishing/things") && message.contains("404"), "{message}");
        }
        other => panic!("the watch ended otherwise: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_whose_credentials_are_refused_is_named() {
    let server = shared_kube_apiserver();
    let namespace = fresh_namespace("refused");
    let admin = KubeExchange::with_kubeconfig(&server.kubeconfig(), &namespace).await.unwrap();
    let store = counter_store();
    admin.register(&store, &counter_schema()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account(server, &namespace, "stranger", dir.path()).await;
    let exchange = KubeExchange::with_kubeconfig(&kubeconfig, &namespace).await.unwrap();
    exchange.register(&store, &counter_schema()).await.unwrap();
    let who = format!("system:serviceaccount:{namespace}:stranger");

    let denied = exchange.get(&store, "a").await.unwrap_err();
    assert!(matches!(denied, ExchangeError::Denied(_)), "{denied}");
    assert!(denied.to_string().contains(&who), "{denied}");

    // Its ServiceAccount gone, its token is refused (once the apiserver's token cache forgets).
    let accounts: Api<ServiceAccount> = Api::namespaced(admin_client(server).await, &namespace);
    accounts.delete("stranger", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let err = exchange.get(&store, "a").await.unwrap_err();
        if err.to_string().contains("401") {
            break err;
        }
        assert!(tokio::time::Instant::now() < deadline, "still not refused in 60 s: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let message = refused.to_string();
    assert!(matches!(refused, ExchangeError::Denied(_)), "{message}");
    assert!(message.starts_with(&store.to_string()) && message.contains(&who), "{message}");

    // A token the apiserver does not know fails the connection, naming the kubeconfig's user.
    let bogus = dir.path().join("bogus");
    server.write_kubeconfig(&bogus, "not-a-token", &namespace);
    let err = KubeExchange::with_kubeconfig(&bogus, &namespace).await.unwrap_err().to_string();
    assert!(err.contains("kubeconfig user `knactor`") && err.contains("401"), "{err}");
}

/// An exchange in a fresh namespace (named after `prefix`) that reaches the shared apiserver
/// through an [`AnswerCutter`], with the counter store registered; the directory holds its
/// kubeconfig.
async fn behind_a_cutter(
    prefix: &str,
) -> (AnswerCutter, KubeExchange, StoreRef, tempfile::TempDir) {
    let server = shared_kube_apiserver();
    let proxy = AnswerCutter::start(server).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = proxy.kubeconfig(server, dir.path());
    let exchange = KubeExchange::with_kubeconfig(&kubeconfig, &fresh_namespace(prefix)).await;
    let exchange = exchange.unwrap();
    let store = counter_store();
    exchange.register(&store, &counter_schema()).await.unwrap();
    (proxy, exchange, store, dir)
}

fn counter_store() -> StoreRef {
    "counter/counts".parse().unwrap()
}

/// The admin's client of `server`.
async fn admin_client(server: &KubeApiserver) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A kubeconfig in `dir` for a new ServiceAccount `name` of `namespace` (which exists), allowed
/// nothing, with a token from the TokenRequest API.
async fn service_account(
    server: &KubeApiserver,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> PathBuf {
    let client = admin_client(server).await;
    let post = PostParams::default();
    let meta = || ObjectMeta { name: Some(name.to_owned()), ..Default::default() };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(&post, &ServiceAccount { metadata: meta(), ..Default::default() })
        .await
        .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(3600), ..Default::default() }),
        ..Default::default()
    };
    let granted = accounts.create_token_request(name, &post, &request).await.unwrap();
    let token = granted.status.and_then(|s| s.token).expect("a token");
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    server.write_kubeconfig(&kubeconfig, &token, namespace);
    kubeconfig
}

/// A TCP proxy in front of an apiserver that can lose the next answer: the request reaches the
/// apiserver and is handled, but the connection it came on is cut before the answer gets back.
/// Only a connection that has already carried bytes back (past its TLS handshake) is cut.
#[derive(Debug)]
struct AnswerCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    /// Accepts and relays connections; aborted on drop.
    relays: JoinSet<()>,
}

impl AnswerCutter {
    async fn start(server: &KubeApiserver) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream: u16 = server.url().rsplit(':').next().unwrap().parse().unwrap();
        let (armed, cuts) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let mut relays = JoinSet::new();
        let (armed_, cuts_) = (armed.clone(), cuts.clone());
        relays.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(relay(client, upstream, armed_.clone(), cuts_.clone()));
            }
        });
        AnswerCutter { port, armed, cuts, relays }
    }

    /// A kubeconfig in `dir` for `server`'s admin, through the proxy.
    fn kubeconfig(&self, server: &KubeApiserver, dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(server.kubeconfig()).unwrap();
        let path = dir.join("via-proxy.kubeconfig");
        let proxied = format!("https://127.0.0.1:{}", self.port);
        std::fs::write(&path, text.replace(&server.url(), &proxied)).unwrap();
        path
    }

    /// Loses the next answer of the apiserver.
    fn cut_next_answer(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many answers were lost.
    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for AnswerCutter {
    fn drop(&mut self) {
        self.relays.abort_all();
    }
}

/// Relays one connection both ways until either side closes it, or its answer is cut.
async fn relay(client: TcpStream, upstream: u16, armed: Arc<AtomicBool>, cuts: Arc<AtomicUsize>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let answers = async {
        let mut buf = vec![0; 64 << 10];
        let mut in_use = false;
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            if in_use && armed.swap(false, Ordering::SeqCst) {
                cuts.fetch_add(1, Ordering::SeqCst);
                return Ok(()); // Both halves are dropped: the connection is cut.
            }
            client_write.write_all(&buf[..n]).await?;
            in_use = true;
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}
