//! `knactor demo retail`: shoppers browse the product catalog and place orders, about one in
//! ten with a card that must be declined; the demo follows every order to its end and checks
//! that every valid order was paid and shipped with a tracking ID and confirmed by email, every
//! invalid card declined, and none left stuck.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use async_trait::async_trait;
use std::sync::Arc;

use data_exchange::{LogExchange, ObjectExchange, StoreRef};
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use knactor::{Demo, DemoApp, DemoOptions, Registry, Write};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const CITIES: [&str; 4] = ["Paris", "Berlin", "Lisbon", "Oslo"];
/// The share of orders paid with a card that must be declined.
const BAD_CARDS: f64 = 0.1;
/// How long the demo waits for the last order before calling the rest stuck.
const PATIENCE: Duration = Duration::from_secs(30);

/// The retail demo.
#[derive(Debug)]
pub struct RetailDemo;

/// A card: valid, or broken in one of the ways payment must catch.
fn card(rng: &mut StdRng) -> (Value, bool) {
    if !rng.random_bool(BAD_CARDS) {
        return (json!({"number": "4242 4242 4242 4242", "expiry": "12/39"}), true);
    }
    match rng.random_range(0..3) {
        0 => (json!({"number": "4242 4242 4242 4241", "expiry": "12/39"}), false),
        1 => (json!({"number": "4242 4242 4242 4242", "expiry": "01/20"}), false),
        _ => (json!({"number": "not a card", "expiry": "12/39"}), false),
    }
}

/// A product of the catalog: SKU and price.
type Product = (String, f64);

/// A shopper's order: one to three products browsed from the catalog, and whether its card is
/// valid.
fn order(rng: &mut StdRng, catalog: &[Product]) -> (Value, bool) {
    let items: Vec<Value> = (0..rng.random_range(1..=3))
        .map(|_| {
            let (sku, price) = &catalog[rng.random_range(0..catalog.len())];
            json!({"sku": sku, "qty": rng.random_range(1..=2), "price": price})
        })
        .collect();
    let (card, valid) = card(rng);
    let city = CITIES[rng.random_range(0..CITIES.len())];
    let email = format!("shopper{}@example.com", rng.random_range(0..1000));
    let address = json!({"city": city});
    let data = json!({"status": "placed", "items": items, "address": address, "card": card, "email": email});
    (data, valid)
}

#[async_trait]
impl Demo for RetailDemo {
    async fn run(&self, options: DemoOptions, registry: &Registry) -> anyhow::Result<()> {
        ensure!(options.orders > 0, "--orders must be at least 1");
        let app = DemoApp::start(&options, registry, "apps/retail").await?;
        let outcome = shop(app.objects(), app.log(), &options).await;
        app.stop().await?;
        outcome
    }
}

/// What became of the orders.
#[derive(Debug, Default)]
struct Outcome {
    completed: u64,
    with_tracking: u64,
    declined: u64,
    declined_valid: u64,
    completed_invalid: u64,
}

async fn shop(
    objects: &Arc<dyn ObjectExchange>,
    log: &Arc<dyn LogExchange>,
    options: &DemoOptions,
) -> anyhow::Result<()> {
    let products = objects.list(&"productcatalog/products".parse()?).await?.items;
    let catalog: Vec<Product> = products
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.data["priceUsd"].as_f64()?)))
        .collect();
    ensure!(!catalog.is_empty(), "the product catalog is empty");
    let orders: StoreRef = "checkout/orders".parse()?;
    let from = objects.list(&orders).await?.version;
    let mut events = objects.watch(&orders, from).await?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let started = Instant::now();
    let mut pending: HashMap<String, (Instant, bool)> = HashMap::new();
    let bar = ProgressBar::new(options.orders).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} orders")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("placing");
    for i in 0..options.orders {
        let (data, valid) = order(&mut rng, &catalog);
        let name = format!("order-{i:06}");
        pending.insert(name.clone(), (Instant::now(), valid));
        objects.write(&orders, Write::put(&name, data)).await?;
    }
    bar.set_message("settling");
    let mut latencies = Histogram::<u64>::new(3)?;
    let mut outcome = Outcome::default();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !pending.is_empty() {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => event?,
            Ok(None) => bail!("the order watch ended"),
            Err(_) => break,
        };
        let order = event.object();
        let status = order.data["status"].as_str().unwrap_or_default();
        if status != "completed" && status != "declined" {
            continue;
        }
        let Some((placed, valid)) = pending.remove(&order.name) else { continue };
        latencies.record(placed.elapsed().as_micros() as u64)?;
        if status == "completed" {
            outcome.completed += 1;
            outcome.with_tracking += u64::from(
                order.data["trackingID"].is_string() && order.data["paymentID"].is_string(),
            );
            outcome.completed_invalid += u64::from(!valid);
        } else {
            outcome.declined += 1;
            outcome.declined_valid += u64::from(valid);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let emails = confirmations(log, outcome.completed, deadline).await?;
    report(&outcome, emails, pending.len() as u64, &latencies, options, started.elapsed())
}

/// How many confirmation emails were sent, once all `expected` are (or the deadline passed).
async fn confirmations(
    log: &Arc<dyn LogExchange>,
    expected: u64,
    deadline: tokio::time::Instant,
) -> anyhow::Result<u64> {
    let sent: StoreRef = "email/sent".parse()?;
    loop {
        let count = log.end(&sent).await?;
        if count >= expected || tokio::time::Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report(
    outcome: &Outcome,
    emails: u64,
    stuck: u64,
    latencies: &Histogram<u64>,
    options: &DemoOptions,
    took: Duration,
) -> anyhow::Result<()> {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "retail: {} orders, seed {}, {:.1} s ({:.0} orders/s)",
        options.orders,
        options.seed,
        took.as_secs_f64(),
        options.orders as f64 / took.as_secs_f64()
    );
    println!(
        "  paid and shipped: {:>7}   (with payment and tracking IDs: {})",
        outcome.completed, outcome.with_tracking
    );
    println!(
        "  declined:         {:>7}   (valid cards among them: {})",
        outcome.declined, outcome.declined_valid
    );
    println!("  stuck:            {stuck:>7}");
    println!(
        "  placed → completed or declined: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.max())
    );
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let all_shipped = outcome.with_tracking == outcome.completed && outcome.completed_invalid == 0;
    let all_declined = outcome.declined_valid == 0;
    println!("{} every valid order paid and shipped with a tracking ID", mark(all_shipped));
    println!("{} every invalid card declined", mark(all_declined));
    println!("{} no order stuck", mark(stuck == 0));
    let all_confirmed = emails == outcome.completed;
    println!("{} every completed order confirmed by email ({emails} sent)", mark(all_confirmed));
    ensure!(
        all_shipped && all_declined && stuck == 0 && all_confirmed,
        "the shop did not do what it should"
    );
    Ok(())
}
