//! The API serves on a runtime of its own: the app's work cannot keep it from answering.

use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use knactor::api::{Access, Tokens};
use knactor::{App, AppConfig, AppOptions, Registry};
use tokio_util::sync::CancellationToken;

/// Both worker threads of the app's runtime are held by work that does not yield (as a costly
/// evaluation would); `/healthz` still answers, and the app stops cleanly once they are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_the_apps_runtime_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let app_yaml = "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: busy}\nspec:\n  knactors: [counter.yaml]\n";
    let counter = "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: counter}\nspec:\n  stores:\n    - name: counts\n      schema: {type: object}\n";
    std::fs::write(dir.path().join("app.yaml"), app_yaml).unwrap();
    std::fs::write(dir.path().join("counter.yaml"), counter).unwrap();
    let config = AppConfig::load(dir.path()).unwrap();
    let app = App::open(config, AppOptions::default(), &Registry::new()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let access = Access::new(Tokens::ephemeral([]).unwrap(), address);
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(listener, access, shutdown.clone()));
    assert_eq!(healthz(address), "HTTP/1.1 200 OK", "serving");

    let busy = Arc::new(AtomicBool::new(true));
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let busy = busy.clone();
            tokio::spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    // Asked from a thread of its own, which gives up after 10 s; the holders are then free
    // again whatever the answer, so that the runtime can stop.
    let answered = tokio::task::spawn_blocking(move || healthz(address)).await;
    busy.store(false, Ordering::Relaxed);
    assert_eq!(answered.unwrap(), "HTTP/1.1 200 OK", "answered while the app's runtime is busy");
    for holder in holders {
        holder.await.unwrap();
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
}

/// The status line `GET /healthz` gets, within 10 s.
fn healthz(address: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let read = stream.read_to_string(&mut answer);
    assert!(read.is_ok(), "no answer within 10 s: {read:?} {answer:?}");
    answer.lines().next().unwrap_or_default().to_owned()
}
