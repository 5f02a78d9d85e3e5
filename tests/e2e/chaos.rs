//! Faults under load: the retail app split on Redis (its knactors in one `knactor up --only`,
//! its Cast specs in `knactor integrate`), with the retail retention policies on. While orders
//! are in flight, a fault is injected at random moments: one of the two processes is killed
//! with SIGKILL and started again, or `redis-server` is killed and restarted, or stalled, or
//! (the Cast specs then running in the knactors' process) the specs are re-applied, in two
//! versions taken in turn.
//! Every order must still end once, paid and shipped or declined; be archived once, with its
//! charge in the payment ledger once; and every object the run made must be collected (none
//! stuck).
//!
//! CI runs a short form. `KNACTOR_CHAOS_ORDERS`, `KNACTOR_CHAOS_KILLS` and
//! `KNACTOR_CHAOS_SEED` set a longer run (docs/GUARANTEES.md gives the figures).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use data_exchange::testing::RedisServer;
use serde_json::{Value, json};

use knactor_cli::client::{Client, ClientError};

use crate::harness::{Up, eventually_within, repo, retail_app};
use crate::retail::{self, order_data};

/// Orders placed and not ended at most.
const IN_FLIGHT: usize = 128;

/// How long the run may go without any order progressing.
const PATIENCE: Duration = Duration::from_secs(120);

/// How long a stalled Redis stays stopped.
const STALL: Duration = Duration::from_secs(5);

/// Sends SIG`name` to process `pid`.
fn signal(name: &str, pid: &str) {
    let sent = std::process::Command::new("kill").args([&format!("-{name}"), pid]).status();
    assert!(sent.unwrap().success(), "kill -{name} {pid}");
}

/// The stores an order makes objects in, all collected once it is done.
const STORES: [&str; 4] =
    ["checkout/orders", "payment/charges", "shipping/shipments", "email/confirmations"];

/// The process a run kills.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// `knactor integrate` with the retail Cast specs.
    Integrator,
    /// `knactor up --only checkout,payment,shipping,email`: reconcilers and collectors.
    Knactors,
    /// `redis-server` itself (its append-only file kept), restarted on the same port.
    Redis,
    /// `redis-server` paused with SIGSTOP for 5 s, then continued: a stalled server.
    RedisPaused,
    /// Not a process: the Cast specs, run by the knactors' process, re-applied with
    /// `knactor apply`, alternately in two versions whose edges differ in form, not in effect.
    Reapply,
}

#[test]
fn orders_end_once_with_the_integrator_killed_9_under_load() {
    chaos(Victim::Integrator);
}

#[test]
fn orders_end_once_with_the_knactors_process_killed_9_under_load() {
    chaos(Victim::Knactors);
}

#[test]
fn orders_end_once_with_redis_killed_9_under_load() {
    chaos(Victim::Redis);
}

#[test]
fn orders_end_once_with_redis_stalled_under_load() {
    chaos(Victim::RedisPaused);
}

#[test]
fn orders_end_once_with_the_specs_reapplied_under_load() {
    chaos(Victim::Reapply);
}

/// A run's size: from the environment, else CI's short form.
struct Plan {
    orders: usize,
    kills: usize,
    seed: u64,
}

impl Plan {
    fn from_env() -> Plan {
        let var = |name: &str, default: u64| -> u64 {
            std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}")))
        };
        let seed = var("KNACTOR_CHAOS_SEED", fastrand::u64(..));
        Plan {
            orders: var("KNACTOR_CHAOS_ORDERS", 300) as usize,
            kills: var("KNACTOR_CHAOS_KILLS", 3) as usize,
            seed,
        }
    }

    /// The orders placed before each kill: `kills` random points of the run, in order.
    fn kill_points(&self, random: &mut fastrand::Rng) -> Vec<usize> {
        let mut points: Vec<usize> = (0..self.kills)
            .map(|_| random.usize(IN_FLIGHT.min(self.orders)..self.orders))
            .collect();
        points.sort_unstable();
        points
    }
}

/// The processes of the split app on one Redis server.
struct Split {
    app: std::path::PathBuf,
    redis: String,
    specs: Vec<String>,
}

impl Split {
    /// The knactors' process, running the Cast specs too when `with_specs` (all the app's, as
    /// `knactor up` does, where `knactor apply` reaches them).
    fn knactors(&self, with_specs: bool) -> Up {
        let only = ["--only", "checkout,payment,shipping,email"];
        let integrators: &[&str] = if with_specs { &[] } else { &["--no-integrators"] };
        Up::start(&self.app, &[&only[..], integrators, &["--exchange", &self.redis]].concat())
    }

    fn integrator(&self) -> Up {
        let app = self.app.to_string_lossy();
        let mut args = vec!["--app", &app, "--exchange", &self.redis];
        for spec in &self.specs {
            args.extend(["-f", spec]);
        }
        Up::integrate(&args)
    }
}

fn chaos(victim: Victim) {
    let plan = Plan::from_env();
    eprintln!(
        "chaos: {} orders, {} faults injected ({victim:?}), seed {} (KNACTOR_CHAOS_SEED)",
        plan.orders, plan.kills, plan.seed
    );
    let mut random = fastrand::Rng::with_seed(plan.seed);
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let specs = ["checkout.yaml", "email.yaml"]
        .map(|s| repo().join("dxg-specs/retail").join(s).to_string_lossy().into_owned());
    let split = Split { app: retail_app(dir.path()), redis: redis.url(), specs: specs.to_vec() };
    // The test's own door to the exchange, never killed: it runs a knactor no order touches.
    let front = Up::start(
        &split.app,
        &["--only", "currency", "--no-integrators", "--exchange", &split.redis],
    );
    let reapply = matches!(victim, Victim::Reapply);
    let mut knactors = Some(split.knactors(reapply));
    let mut integrator = (!reapply).then(|| split.integrator());
    let versions = [&split.specs, &other_versions(&split.specs, dir.path())];

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = front.client();
    let started = Instant::now();
    let mut kill_points = plan.kill_points(&mut random).into_iter().peekable();
    let (mut placed, mut kills) = (0, 0);
    let (mut progress, mut last_open) = (Instant::now(), usize::MAX);
    loop {
        // Redis may be loading its data again, after a restart: the API answers 503 meanwhile.
        let open = runtime.block_on(open_orders(&client));
        assert!(
            progress.elapsed() < PATIENCE,
            "{last_open} orders made no progress for {PATIENCE:?} after {kills} faults (seed {})",
            plan.seed
        );
        let Some(open) = open else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if open != last_open {
            (progress, last_open) = (Instant::now(), open);
        }
        if placed == plan.orders && open == 0 {
            break;
        }
        let room = IN_FLIGHT.saturating_sub(open).min(plan.orders - placed);
        runtime.block_on(async {
            for i in placed..placed + room {
                place(&client, i).await;
            }
        });
        placed += room;
        if room > 0 {
            progress = Instant::now();
        }
        if kill_points.next_if(|&point| point <= placed).is_some() {
            let pause = Duration::from_millis(random.u64(0..500));
            let slot = match victim {
                Victim::Integrator => &mut integrator,
                Victim::Knactors => &mut knactors,
                Victim::Redis => {
                    redis.kill();
                    std::thread::sleep(pause);
                    redis.restart();
                    kills += 1;
                    continue;
                }
                Victim::RedisPaused => {
                    let pid = redis.pid().unwrap().to_string();
                    signal("STOP", &pid);
                    std::thread::sleep(STALL);
                    signal("CONT", &pid);
                    kills += 1;
                    continue;
                }
                Victim::Reapply => {
                    kills += 1;
                    for spec in versions[kills % 2] {
                        let applied = knactors.as_ref().unwrap().ok(&["apply", "-f", spec]);
                        assert!(applied.contains(" configured: "), "a new version: {applied}");
                    }
                    continue;
                }
            };
            slot.take().unwrap().kill();
            kills += 1;
            std::thread::sleep(pause);
            *slot = Some(match victim {
                Victim::Integrator => split.integrator(),
                _ => split.knactors(false),
            });
        } else if room == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Finished orders go 10 s after they ended (their ttl), what they made after them.
    for store in STORES {
        eventually_within(Duration::from_secs(60), &format!("{store} to be collected"), || {
            let list = runtime.block_on(client.list(store)).unwrap();
            let left = list["items"].as_array().unwrap().len();
            (left == 0).then_some(())
        });
    }
    let archived = once_each(&front, "checkout/archive", "status, \"trackingID\", \"paymentID\"");
    let ledger = once_each(&front, "payment/ledger", "\"transactionID\", declined");
    assert_eq!(archived.len(), plan.orders, "every order archived");
    assert_eq!(ledger.len(), plan.orders, "every charge in the ledger");
    for i in 0..plan.orders {
        let (name, order, charge) = (name(i), &archived[&name(i)], &ledger[&name(i)]);
        if declined(i) {
            assert_eq!(order["status"], "declined", "{name}: {order}");
            assert!(charge["declined"].is_string(), "{name}: {charge}");
        } else {
            assert_eq!(order["status"], "completed", "{name}: {order}");
            assert!(order["trackingID"].as_str().is_some_and(|t| t.starts_with("1Z")), "{order}");
            assert_eq!(order["paymentID"], charge["transactionID"], "{name}: {charge}");
        }
    }
    eprintln!(
        "chaos: {} orders, {kills} faults injected ({victim:?}): 0 lost, 0 twice, 0 stuck, in {:.0} s",
        plan.orders,
        started.elapsed().as_secs_f64()
    );
}

/// The Cast specs `specs` in other versions, written in `dir`: each edge's `when` holds one
/// condition more, always true, so that every edge changes and none acts otherwise.
fn other_versions(specs: &[String], dir: &std::path::Path) -> Vec<String> {
    let other = |spec: &String| {
        let text = std::fs::read_to_string(spec).unwrap();
        let edited: Vec<String> = text
            .lines()
            .map(|line| match line.trim_start().starts_with("when: ") {
                true => format!("{line} && true"),
                false => line.to_owned(),
            })
            .collect();
        assert!(edited.iter().any(|l| l.ends_with(" && true")), "{spec} has no `when`");
        let path = dir.join(format!("other-{}", spec.rsplit('/').next().unwrap()));
        std::fs::write(&path, edited.join("\n")).unwrap();
        path.to_string_lossy().into_owned()
    };
    specs.iter().map(other).collect()
}

fn name(i: usize) -> String {
    format!("o{i:06}")
}

/// Every seventh order's card has expired.
fn declined(i: usize) -> bool {
    i % 7 == 3
}

/// Order `i`: half with an email address (a confirmation to send), every seventh declined.
fn order(i: usize) -> Value {
    let mut data = order_data(20.0 + (i % 20) as f64 * 10.0);
    if declined(i) {
        data["card"]["expiry"] = json!("01/20");
    }
    if i.is_multiple_of(2) {
        data["email"] = json!(format!("shopper{i}@example.com"));
    }
    data
}

/// The orders in the store that have not ended; `None` while the exchange does not answer.
async fn open_orders(client: &Client) -> Option<usize> {
    let list = client.list("checkout/orders").await.ok()?;
    let items = list["items"].as_array().unwrap();
    let open = |o: &&Value| !matches!(o["data"]["status"].as_str(), Some("completed" | "declined"));
    Some(items.iter().filter(open).count())
}

/// Places order `i`, again while the exchange does not answer (Redis restarting or stalled);
/// create-only, so that a try that failed but landed is not written over.
async fn place(client: &Client, i: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.create("checkout/orders", &name(i), order(i)).await {
            Ok(_) => return,
            Err(ClientError::Api { reason, .. }) if reason == "AlreadyExists" => return,
            Err(error) => assert!(Instant::now() < deadline, "order {i} not placed: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The records of Log store `store` (`columns` and their `name`) by name, each there once.
fn once_each(front: &Up, store: &str, columns: &str) -> BTreeMap<String, Value> {
    let sql = format!("SELECT name, {columns} FROM \"{store}\"");
    let rows: Vec<Value> = serde_json::from_str(&front.ok(&["query", &sql, "-o", "json"])).unwrap();
    let mut seen = HashSet::new();
    let twice: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .filter(|name| !seen.insert(*name))
        .collect();
    assert!(twice.is_empty(), "in {store} more than once: {twice:?}");
    rows.into_iter().map(|r| (r["name"].as_str().unwrap().to_owned(), r)).collect()
}

/// Redis restarted without persistence has lost every object of the app: the app says so in
/// its log, registers its stores and writes their seeds again (the exchange rates are back),
/// its watches start afresh on the new data, and an order placed after completes.
#[test]
fn the_app_goes_on_after_redis_lost_its_data() {
    let mut redis = RedisServer::start_in_memory();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut command = crate::harness::knactor();
    command.env("RUST_LOG", "info").stderr(std::fs::File::create(&log).unwrap());
    let app = retail_app(dir.path());
    let up = Up::start_as(command, &app, &["--exchange", &redis.url(), "--keep"]);
    let rates = || up.ok(&["get", "currency/rates", "-o", "name"]).lines().count();
    assert_eq!(rates(), 8, "the rates are seeded");
    for i in 0..3 {
        retail::put_order(&up, dir.path(), &format!("before-{i}"), 20.0);
    }
    retail::completed(&up, "before-2");

    redis.restart();
    let logged = eventually_within(Duration::from_secs(30), "the stores seeded again", || {
        let logged = std::fs::read_to_string(&log).unwrap();
        logged.contains("the stores are registered and seeded again").then_some(logged)
    });
    assert!(logged.contains("the exchange lost the app's data"), "{logged}");
    assert_eq!(rates(), 8, "the rates are back");
    // What the catalog spec derives from the seeded products comes back too: its watch of
    // the products expired, and it handled every product listed as new.
    let derived = || up.cli(&["get", "frontend/products", "-o", "name"]).stdout;
    eventually_within(Duration::from_secs(30), "the storefront's products again", || {
        (String::from_utf8_lossy(&derived()).lines().count() == 9).then_some(())
    });
    assert!(retail::get(&up, "checkout/orders", "before-2").is_none(), "the data is gone");
    // More changes than the watches had seen before: they resume on the new data only by
    // listing it again.
    for i in 0..5 {
        retail::put_order(&up, dir.path(), &format!("after-{i}"), 20.0);
    }
    for i in 0..5 {
        retail::completed(&up, &format!("after-{i}"));
    }
    assert_eq!(rates(), 8);
}
