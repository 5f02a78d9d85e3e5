//! `knactor demo smart-home`: simulated devices drive the smart-home app minute by minute. A
//! motion sensor reports occupancy from a seeded random walk; lamps report their draw; the
//! house clock ticks. The demo checks, every minute, that the lamps follow occupancy and that
//! no lamp is on during sleep hours, and at the end that the energy per room the house
//! learned equals what the lamps drew.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use async_trait::async_trait;
use data_exchange::{LogExchange, ObjectExchange, StoreRef};
use indicatif::{ProgressBar, ProgressStyle};
use knactor::{Registry, Write};
use knactor_apps::smart_home::power;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::demo::{Demo, DemoApp, DemoOptions};

/// The rooms, with their desired brightness.
const ROOMS: [(&str, f64); 4] =
    [("bedroom", 40.0), ("hall", 30.0), ("kitchen", 80.0), ("living", 60.0)];
/// The simulation starts at this hour of 2026-01-01 (UTC).
const START_HOUR: u64 = 18;
const START_MS: i64 = 1_767_225_600_000 + START_HOUR as i64 * 3_600_000;
/// Sleep hours: [SLEEP_FROM, SLEEP_TO).
const SLEEP_FROM: u64 = 23;
const SLEEP_TO: u64 = 7;
/// The chance, each minute, that a room's occupancy changes.
const MOVE: f64 = 0.15;

/// The smart-home demo.
#[derive(Debug)]
pub struct SmartHomeDemo;

fn store(name: &str) -> StoreRef {
    name.parse().expect("a valid store ref")
}

/// Whether `hour` is in the sleep hours, which wrap around midnight.
fn asleep(hour: u64) -> bool {
    !(SLEEP_TO..SLEEP_FROM).contains(&hour)
}

/// What one room did over the run.
#[derive(Debug, Default)]
struct Tally {
    occupied: u64,
    lamp_on: u64,
    on_in_sleep_hours: u64,
    motion: u64,
    drawn_wh: f64,
}

#[async_trait]
impl Demo for SmartHomeDemo {
    async fn run(&self, options: DemoOptions, registry: &Registry) -> anyhow::Result<()> {
        let app = DemoApp::start(&options, registry, "apps/smart-home").await?;
        let outcome = drive(app.objects(), app.log(), &options).await;
        if let Some(line) = app.stop_with_summary().await? {
            println!("{line}");
        }
        outcome
    }
}

async fn drive(
    objects: &Arc<dyn ObjectExchange>,
    log: &Arc<dyn LogExchange>,
    options: &DemoOptions,
) -> anyhow::Result<()> {
    let minutes = options.minutes;
    ensure!(minutes > 0, "--minutes must be at least 1");
    let earlier = log.end(&store("lamp/energy")).await?;
    ensure!(
        earlier == 0,
        "lamp/energy already holds {earlier} readings from an earlier run: run the demo on a fresh exchange"
    );
    let started = Instant::now();
    let brightness: serde_json::Map<String, Value> =
        ROOMS.iter().map(|(r, b)| ((*r).to_owned(), json!(b))).collect();
    let settings = json!({
        "hour": START_HOUR, "sleepFrom": SLEEP_FROM, "sleepTo": SLEEP_TO,
        "sensitivity": 2, "brightness": brightness
    });
    objects.write(&store("house/settings"), Write::put("home", settings)).await?;
    let patience = Patience::new("the sensor to get the house's sensitivity");
    let sensitivity = loop {
        let config = objects.get(&store("motion/config"), "sensor").await?;
        if let Some(sensitivity) = config.and_then(|c| c.data["sensitivity"].as_i64()) {
            break sensitivity;
        }
        patience.wait().await?;
    };

    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut occupied: BTreeMap<&str, bool> = ROOMS.iter().map(|(r, _)| (*r, false)).collect();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let bar = ProgressBar::new(minutes).with_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} minutes")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    for minute in 0..minutes {
        let hour = (START_HOUR + minute / 60) % 24;
        bar.set_message(format!("{hour:02}:{:02}", minute % 60));
        if minute % 60 == 0 {
            objects
                .write(&store("house/settings"), Write::patch("home", json!({"hour": hour})))
                .await?;
        }
        // The motion sensor reports every room each minute.
        for (room, occupied) in &mut occupied {
            if rng.random_bool(MOVE) {
                *occupied = !*occupied;
            }
            let report = json!({"occupied": *occupied, "minute": minute});
            objects.write(&store("motion/occupancy"), Write::put(*room, report)).await?;
        }
        // The lamps follow, through Cast and the lamp knactor.
        let expected: BTreeMap<&str, f64> = ROOMS
            .iter()
            .map(|(room, desired)| {
                (*room, if occupied[room] && !asleep(hour) { power(*desired) } else { 0.0 })
            })
            .collect();
        let patience = Patience::new(format!("the lamps to follow occupancy at minute {minute}"));
        let mut lamps = BTreeMap::new();
        for (room, watts) in &expected {
            let lamp = loop {
                let lamp = objects.get(&store("lamp/lamps"), room).await?;
                if let Some(lamp) = lamp.filter(|l| l.data["power"].as_f64() == Some(*watts)) {
                    break lamp;
                }
                patience.wait().await?;
            };
            lamps.insert(*room, lamp.data.clone());
        }
        // The devices' readings.
        let ts = START_MS + minute as i64 * 60_000 + 30_000;
        let mut energy = Vec::new();
        let mut motion = Vec::new();
        for (room, lamp) in &lamps {
            let tally = tallies.entry(room).or_default();
            let watts = lamp["power"].as_f64().unwrap_or(0.0);
            let on = lamp["on"].as_bool().unwrap_or(false);
            tally.occupied += u64::from(occupied[room]);
            tally.lamp_on += u64::from(on);
            tally.on_in_sleep_hours += u64::from(on && asleep(hour));
            tally.motion += u64::from(occupied[room] && sensitivity >= 2);
            tally.drawn_wh += watts / 60.0;
            energy.push(json!({"ts": ts, "room": room, "kwh": watts / 60.0 / 1000.0}));
            let triggered = occupied[room];
            motion.push(
                json!({"ts": ts, "room": room, "triggered": triggered, "sensitivity": sensitivity}),
            );
        }
        log.append_json(&store("lamp/energy"), &energy).await?;
        log.append_json(&store("motion/readings"), &motion).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    // A last reading of nothing, a minute later, closes the last minute's window.
    let ts = START_MS + minutes as i64 * 60_000 + 30_000;
    let closing: Vec<Value> =
        ROOMS.iter().map(|(room, _)| json!({"ts": ts, "room": room, "kwh": 0.0})).collect();
    log.append_json(&store("lamp/energy"), &closing).await?;
    let windows = minutes * ROOMS.len() as u64;
    let motion_events: u64 = tallies.values().map(|t| t.motion).sum();
    let patience = Patience::new("the house to learn every minute's energy and motion");
    while log.end(&store("house/energy")).await? < windows
        || log.end(&store("house/motion")).await? < motion_events
    {
        patience.wait().await?;
    }
    let learned = per_room(
        log,
        r#"SELECT room, sum(wh) AS wh, count(*) AS n FROM "house/energy" GROUP BY room"#,
    )
    .await?;
    let events =
        per_room(log, r#"SELECT room, count(*) AS n FROM "house/motion" GROUP BY room"#).await?;
    report(&tallies, &learned, &events, options, started.elapsed())
}

/// Rows of a per-room query, by room.
async fn per_room(
    log: &Arc<dyn LogExchange>,
    sql: &str,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let batches = log.query(sql).await?;
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    let rows: Vec<Value> =
        if bytes.is_empty() { Vec::new() } else { serde_json::from_slice(&bytes)? };
    Ok(rows.into_iter().map(|r| (r["room"].as_str().unwrap_or_default().to_owned(), r)).collect())
}

/// How long the demo waits for the app to do something before calling it a failure.
struct Patience {
    what: String,
    deadline: Instant,
}

impl Patience {
    fn new(what: impl Into<String>) -> Self {
        Patience { what: what.into(), deadline: Instant::now() + Duration::from_secs(10) }
    }

    /// Waits a moment; an error once the patience has run out.
    async fn wait(&self) -> anyhow::Result<()> {
        if Instant::now() > self.deadline {
            bail!("timed out waiting for {}", self.what);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

fn report(
    tallies: &BTreeMap<&str, Tally>,
    learned: &BTreeMap<String, Value>,
    events: &BTreeMap<String, Value>,
    options: &DemoOptions,
    took: Duration,
) -> anyhow::Result<()> {
    println!(
        "smart-home: {} simulated minutes from {START_HOUR:02}:00, sleep hours {SLEEP_FROM:02}:00–{SLEEP_TO:02}:00, seed {}, {:.1} s",
        options.minutes,
        options.seed,
        took.as_secs_f64()
    );
    println!(
        "{:<9} {:>9} {:>9} {:>7} {:>13} {:>13}",
        "room", "occupied", "lamp on", "motion", "energy (Wh)", "drawn (Wh)"
    );
    let mut energy_matches = true;
    let mut motion_matches = true;
    for (room, tally) in tallies {
        let wh = learned.get(*room).and_then(|r| r["wh"].as_f64()).unwrap_or(0.0);
        let seen = events.get(*room).and_then(|r| r["n"].as_u64()).unwrap_or(0);
        energy_matches &= (wh - tally.drawn_wh).abs() < 1e-6;
        motion_matches &= seen == tally.motion;
        println!(
            "{room:<9} {:>7} m {:>7} m {seen:>7} {wh:>13.2} {:>13.2}",
            tally.occupied, tally.lamp_on, tally.drawn_wh
        );
    }
    let in_sleep: u64 = tallies.values().map(|t| t.on_in_sleep_hours).sum();
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    // Checked every minute above: a lamp that did not follow ends the demo with an error there.
    println!("{} lamps followed occupancy every minute", mark(true));
    println!("{} no lamp on during sleep hours ({in_sleep} lamp-minutes)", mark(in_sleep == 0));
    println!("{} energy per room equals the lamps' draw", mark(energy_matches));
    println!(
        "{} every motion reading above the sensitivity reached the house",
        mark(motion_matches)
    );
    ensure!(
        in_sleep == 0 && energy_matches && motion_matches,
        "the smart home did not do what it should"
    );
    Ok(())
}
