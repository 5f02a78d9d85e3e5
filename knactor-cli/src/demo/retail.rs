//! `knactor demo retail`: the load generator's shoppers browse the catalog, fill their carts
//! and check out through the frontend, about one in ten with a card that must be declined. The
//! demo starts one shopper per order, follows each to the end of their order, and checks that
//! every valid order was paid, shipped with a tracking ID and confirmed by email, every invalid
//! card declined, every order priced from the catalog, every page shown with an ad and
//! recommendations outside the cart, and no shopper left stuck.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use async_trait::async_trait;
use data_exchange::{LogExchange, Object, ObjectExchange, StoreRef};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use knactor::{Registry, Write};
use serde_json::{Value, json};

use crate::demo::{Demo, DemoApp, DemoOptions};

/// How long the demo waits for any shopper to progress before calling the rest stuck.
const PATIENCE: Duration = Duration::from_secs(30);

/// The retail demo.
#[derive(Debug)]
pub struct RetailDemo;

#[async_trait]
impl Demo for RetailDemo {
    async fn run(&self, options: DemoOptions, registry: &Registry) -> anyhow::Result<()> {
        ensure!(options.orders > 0, "--orders must be at least 1");
        let app = DemoApp::start(&options, registry, "apps/retail").await?;
        let outcome = shop(app.objects(), app.log(), &options).await;
        if let Some(line) = app.stop_with_summary().await? {
            println!("{line}");
        }
        outcome
    }
}

fn store(name: &str) -> StoreRef {
    name.parse().expect("a valid store ref")
}

/// The shoppers whose order ended, by name.
type Ended = HashMap<String, Arc<Object>>;

async fn shop(
    objects: &Arc<dyn ObjectExchange>,
    log: &Arc<dyn LogExchange>,
    options: &DemoOptions,
) -> anyhow::Result<()> {
    let users = store("loadgenerator/users");
    let existing = objects.list(&users).await?;
    ensure!(
        existing.items.is_empty(),
        "loadgenerator/users already holds {} shoppers from an earlier run: run the demo on a fresh exchange",
        existing.items.len()
    );
    let from = existing.version;
    let mut events = objects.watch(&users, from).await?;
    let bar = ProgressBar::new(options.orders).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} shoppers")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("shopping");
    let started = Instant::now();
    let mut pending = HashMap::new();
    for i in 0..options.orders {
        let name = format!("shopper-{i:06}");
        pending.insert(name.clone(), Instant::now());
        objects.write(&users, Write::put(&name, json!({ "seed": options.seed }))).await?;
    }
    let (mut ended, mut journeys) = (Ended::new(), Histogram::<u64>::new(3)?);
    while !pending.is_empty() {
        let event = match tokio::time::timeout(PATIENCE, events.next()).await {
            Ok(Some(event)) => event?,
            Ok(None) => bail!("the shoppers' watch ended"),
            Err(_) => break,
        };
        let user = event.object();
        if user.data.get("outcome").is_none() {
            continue;
        }
        let Some(began) = pending.remove(&user.name) else { continue };
        journeys.record(began.elapsed().as_micros() as u64)?;
        ended.insert(user.name.clone(), user.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let took = started.elapsed();
    let checks = Checks::gather(objects, log, &ended).await?;
    report(&checks, pending.len() as u64, &journeys, options, took)
}

/// What the shop did for the shoppers whose order ended.
#[derive(Debug, Default)]
struct Checks {
    completed: u64,
    with_ids: u64,
    completed_invalid: u64,
    declined: u64,
    declined_valid: u64,
    priced_from_catalog: u64,
    pages_complete: u64,
    currencies: HashSet<String>,
    emails: u64,
}

impl Checks {
    /// Reads the orders, sessions and emails of the `ended` shoppers.
    async fn gather(
        objects: &Arc<dyn ObjectExchange>,
        log: &Arc<dyn LogExchange>,
        ended: &Ended,
    ) -> anyhow::Result<Checks> {
        let prices: HashMap<String, f64> = by_name(objects, "productcatalog/products")
            .await?
            .into_iter()
            .filter_map(|(sku, p)| Some((sku, p.data["priceUsd"].as_f64()?)))
            .collect();
        let orders = by_name(objects, "checkout/orders").await?;
        let sessions = settled_sessions(objects, ended).await?;
        let mut checks = Checks::default();
        for (name, user) in ended {
            let (plan, outcome) = (&user.data["plan"], &user.data["outcome"]);
            let valid = plan["expect"] == "completed";
            let order = orders.get(name).map(|o| &o.data).unwrap_or(&Value::Null);
            if outcome == "completed" {
                checks.completed += 1;
                checks.completed_invalid += u64::from(!valid);
                checks.with_ids +=
                    u64::from(order["trackingID"].is_string() && order["paymentID"].is_string());
            } else {
                checks.declined += 1;
                checks.declined_valid += u64::from(valid);
            }
            checks.priced_from_catalog +=
                u64::from(order["total"].as_f64() == Some(catalog_total(plan, &prices)));
            let page = sessions.get(name).map(|s| &s.data["page"]).unwrap_or(&Value::Null);
            checks.pages_complete += u64::from(page_is_complete(page, plan));
            if let Some(total) = page["cartTotal"].as_str().and_then(|t| t.split(' ').nth(1)) {
                checks.currencies.insert(total.to_owned());
            }
        }
        checks.emails = emails_sent(log, checks.completed).await?;
        Ok(checks)
    }
}

/// How many confirmation emails were sent, once `expected` are (or after [`PATIENCE`]).
async fn emails_sent(log: &Arc<dyn LogExchange>, expected: u64) -> anyhow::Result<u64> {
    let (sent, deadline) = (store("email/sent"), Instant::now() + PATIENCE);
    loop {
        let count = log.end(&sent).await?;
        if count >= expected || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The objects of store `name`, by name.
async fn by_name(
    objects: &Arc<dyn ObjectExchange>,
    name: &str,
) -> anyhow::Result<HashMap<String, Arc<Object>>> {
    let list = objects.list(&store(name)).await?.items;
    Ok(list.into_iter().map(|o| (o.name.clone(), o)).collect())
}

/// The sessions, once the page of every `ended` shopper is complete (or after [`PATIENCE`]):
/// recommendations and ads may still be on their way when an order ends.
async fn settled_sessions(
    objects: &Arc<dyn ObjectExchange>,
    ended: &Ended,
) -> anyhow::Result<HashMap<String, Arc<Object>>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sessions = by_name(objects, "frontend/sessions").await?;
        let complete = ended.iter().all(|(name, user)| {
            let page = sessions.get(name).map(|s| &s.data["page"]).unwrap_or(&Value::Null);
            page_is_complete(page, &user.data["plan"])
        });
        if complete || Instant::now() > deadline {
            return Ok(sessions);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The total of the plan's items at the catalog's prices, to the cent.
fn catalog_total(plan: &Value, prices: &HashMap<String, f64>) -> f64 {
    let items = plan["items"].as_array().into_iter().flatten();
    let total: f64 = items
        .map(|i| {
            prices.get(i["sku"].as_str().unwrap_or_default()).copied().unwrap_or(f64::NAN)
                * i["qty"].as_f64().unwrap_or(0.0)
        })
        .sum();
    (total * 100.0).round() / 100.0
}

/// Whether the last page showed an ad and recommendations, none of them in the cart.
fn page_is_complete(page: &Value, plan: &Value) -> bool {
    let in_cart: Vec<&Value> =
        plan["items"].as_array().into_iter().flatten().map(|i| &i["sku"]).collect();
    let recommended = page["recommended"].as_array();
    page["ad"].is_string()
        && recommended.is_some_and(|r| !r.is_empty() && r.iter().all(|sku| !in_cart.contains(&sku)))
}

fn report(
    checks: &Checks,
    stuck: u64,
    journeys: &Histogram<u64>,
    options: &DemoOptions,
    took: Duration,
) -> anyhow::Result<()> {
    let ms = |us: u64| us as f64 / 1000.0;
    let ended = checks.completed + checks.declined;
    println!(
        "retail: {} shoppers, seed {}, {:.1} s ({:.0} orders/s)",
        options.orders,
        options.seed,
        took.as_secs_f64(),
        ended as f64 / took.as_secs_f64()
    );
    println!(
        "  paid and shipped: {:>7}   (with payment and tracking IDs: {})",
        checks.completed, checks.with_ids
    );
    println!(
        "  declined:         {:>7}   (valid cards among them: {})",
        checks.declined, checks.declined_valid
    );
    println!("  stuck:            {stuck:>7}");
    println!(
        "  journeys, first view → order ended: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(journeys.value_at_quantile(0.5)),
        ms(journeys.value_at_quantile(0.99)),
        ms(journeys.max())
    );
    let mut currencies: Vec<&str> = checks.currencies.iter().map(String::as_str).collect();
    currencies.sort_unstable();
    println!("  cart totals shown in: {}", currencies.join(", "));
    let results = [
        (
            checks.with_ids == checks.completed && checks.completed_invalid == 0,
            "every valid order paid and shipped with a tracking ID".to_owned(),
        ),
        (checks.declined_valid == 0, "every invalid card declined".to_owned()),
        (stuck == 0, "no order stuck".to_owned()),
        (
            checks.emails == checks.completed,
            format!("every completed order confirmed by email ({} sent)", checks.emails),
        ),
        (checks.priced_from_catalog == ended, "every order priced from the catalog".to_owned()),
        (
            checks.pages_complete == ended,
            "every page showed an ad and recommendations outside the cart".to_owned(),
        ),
    ];
    for (ok, check) in &results {
        println!("{} {check}", if *ok { "✓" } else { "✗" });
    }
    ensure!(results.iter().all(|(ok, _)| *ok), "the shop did not do what it should");
    Ok(())
}
