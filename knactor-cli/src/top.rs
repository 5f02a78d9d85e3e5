//! `knactor top`: a live view of what the integrators and reconcilers of a running app do,
//! read from its `/metrics` every `--interval` and drawn in place; `q` quits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use crate::client::Client;

#[derive(Debug, Args)]
pub(super) struct TopArgs {
    /// How often to read the app's metrics.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// One scrape of `/metrics`: each sample by metric name and labels.
#[derive(Debug, Default)]
struct Samples(BTreeMap<(String, Vec<(String, String)>), f64>);

impl Samples {
    /// Reads the samples of the Prometheus text `text` (comments and `# EOF` skipped).
    fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter_map(|pair| pair.split_once("=\""))
                .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
                .collect();
            samples.insert((name.to_owned(), labels), value);
        }
        Samples(samples)
    }

    /// The samples of `name`, summed by the values of the labels `by`.
    fn sum_by(&self, name: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut sums = BTreeMap::new();
        for ((metric, labels), value) in &self.0 {
            if metric != name {
                continue;
            }
            let label = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            let key: Option<Vec<String>> = by.iter().map(|k| label(k)).collect();
            if let Some(key) = key {
                *sums.entry(key).or_insert(0.0) += value;
            }
        }
        sums
    }
}

/// The rows of each table, from two scrapes `took` apart.
struct View {
    edges: Vec<[String; 6]>,
    flows: Vec<[String; 3]>,
    reconcilers: Vec<[String; 4]>,
    slowest: Option<String>,
}

impl View {
    fn between(before: &Samples, now: &Samples, took: Duration) -> View {
        let per_second = |now: f64, before: Option<&f64>| {
            // A counter below its last value started again (the server restarted).
            let before = before.copied().filter(|b| *b <= now).unwrap_or(0.0);
            let rate = (now - before) / took.as_secs_f64().max(0.001);
            format!("{rate:.1}")
        };
        let evaluations = "knactor_cast_edge_evaluations_total";
        let by_edge = ["spec", "edge"];
        let (all_now, all_before) =
            (now.sum_by(evaluations, &by_edge), before.sum_by(evaluations, &by_edge));
        let outcome = |samples: &Samples, outcome: &str| {
            let mut sums = BTreeMap::new();
            for (key, value) in samples.sum_by(evaluations, &["spec", "edge", "outcome"]) {
                if key[2] == outcome {
                    sums.insert(key[..2].to_vec(), value);
                }
            }
            sums
        };
        let (written_now, written_before) = (outcome(now, "written"), outcome(before, "written"));
        let errors = now.sum_by("knactor_cast_edge_errors_total", &by_edge);
        let lags = now.sum_by("knactor_spec_lag_versions", &["spec"]);
        let seconds_now = now.sum_by("knactor_cast_edge_duration_seconds_sum", &by_edge);
        let seconds_before = before.sum_by("knactor_cast_edge_duration_seconds_sum", &by_edge);
        let mut slowest: Option<(f64, String)> = None;
        let mut edges = Vec::new();
        for (key, total) in &all_now {
            let handled = total - all_before.get(key).copied().unwrap_or(0.0);
            if handled > 0.0 {
                let spent = seconds_now.get(key).copied().unwrap_or(0.0)
                    - seconds_before.get(key).copied().unwrap_or(0.0);
                let mean = spent / handled;
                if slowest.as_ref().is_none_or(|(m, _)| mean > *m) {
                    let micros = mean * 1e6;
                    slowest =
                        Some((mean, format!("{}/{} ({micros:.0} µs a change)", key[0], key[1])));
                }
            }
            edges.push([
                key[0].clone(),
                key[1].clone(),
                per_second(*total, all_before.get(key)),
                per_second(written_now.get(key).copied().unwrap_or(0.0), written_before.get(key)),
                format!("{}", errors.get(key).copied().unwrap_or(0.0)),
                lags.get(&key[..1]).map_or("-".to_owned(), |l| l.to_string()),
            ]);
        }
        let records = "knactor_sync_flow_records_total";
        let (flows_now, flows_before) =
            (now.sum_by(records, &["spec", "flow"]), before.sum_by(records, &["spec", "flow"]));
        let flows = flows_now
            .iter()
            .map(|(key, total)| {
                [key[0].clone(), key[1].clone(), per_second(*total, flows_before.get(key))]
            })
            .collect();
        let reconciles = "knactor_reconciles_total";
        let (runs_now, runs_before) =
            (now.sum_by(reconciles, &["knactor"]), before.sum_by(reconciles, &["knactor"]));
        let failed = now.sum_by(reconciles, &["knactor", "outcome"]);
        let queues = now.sum_by("knactor_reconcile_queue_depth", &["knactor"]);
        let reconcilers = runs_now
            .iter()
            .map(|(key, total)| {
                let errors = failed.get([key[0].clone(), "error".to_owned()].as_slice());
                [
                    key[0].clone(),
                    per_second(*total, runs_before.get(key)),
                    format!("{}", errors.copied().unwrap_or(0.0)),
                    format!("{}", queues.get(key).copied().unwrap_or(0.0)),
                ]
            })
            .collect();
        View { edges, flows, reconcilers, slowest: slowest.map(|(_, edge)| edge) }
    }
}

/// How long a scrape may take before `top` gives up.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a key quits: `q`, Esc or Ctrl-C (which raw mode hands over as a key).
fn quits(code: KeyCode, modifiers: KeyModifiers) -> bool {
    match code {
        KeyCode::Char('q') | KeyCode::Esc => true,
        KeyCode::Char('c') => modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Runs the view until `q` (Esc, Ctrl-C) is pressed.
pub(super) async fn top(client: &Client, args: TopArgs) -> anyhow::Result<()> {
    // Reachable before the screen is taken: an error is then printed as any other.
    let mut before = Samples::parse(&client.metrics().await?);
    let mut scraped = Instant::now();
    let mut terminal = ratatui::init();
    let outcome = async {
        loop {
            // Keys, until the next scrape is due.
            let due = scraped + args.interval;
            while let Some(left) = due.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                if let Event::Key(key) = event::read()?
                    && key.kind == KeyEventKind::Press
                    && quits(key.code, key.modifiers)
                {
                    return Ok(());
                }
            }
            let scrape = tokio::time::timeout(SCRAPE_TIMEOUT, client.metrics()).await;
            let text = scrape.map_err(|_| {
                anyhow::anyhow!(
                    "{} did not answer /metrics within {SCRAPE_TIMEOUT:?}",
                    client.server()
                )
            })??;
            let now = Samples::parse(&text);
            let view = View::between(&before, &now, scraped.elapsed());
            (before, scraped) = (now, Instant::now());
            terminal.draw(|frame| draw(frame, client.server(), &view))?;
        }
    }
    .await;
    ratatui::restore();
    outcome
}

fn draw(frame: &mut ratatui::Frame, server: &str, view: &View) {
    let [title, edges, flows, reconcilers] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(view.flows.len() as u16 + 3),
        Constraint::Length(view.reconcilers.len() as u16 + 3),
    ])
    .areas(frame.area());
    let slowest = view.slowest.as_deref().unwrap_or("-");
    let heading = format!("knactor top — {server} — slowest edge: {slowest} — q quits");
    frame.render_widget(Paragraph::new(heading), title);
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let table = |name: &'static str,
                 header: Vec<&'static str>,
                 rows: Vec<Vec<String>>,
                 widths: Vec<Constraint>| {
        Table::new(rows.into_iter().map(Row::new), widths)
            .header(Row::new(header).style(bold))
            .block(Block::default().borders(Borders::TOP).title(name))
    };
    let edge_rows = view.edges.iter().map(|r| r.to_vec()).collect();
    let header = vec!["SPEC", "EDGE", "CHANGES/S", "WRITES/S", "ERRORS", "LAG"];
    let widths = [20, 24, 10, 10, 8, 8].map(Constraint::Length).to_vec();
    frame.render_widget(table("Cast edges", header, edge_rows, widths), edges);
    let flow_rows = view.flows.iter().map(|r| r.to_vec()).collect();
    let widths = [20, 24, 10].map(Constraint::Length).to_vec();
    frame.render_widget(
        table("Sync flows", vec!["SPEC", "FLOW", "RECORDS/S"], flow_rows, widths),
        flows,
    );
    let reconciler_rows = view.reconcilers.iter().map(|r| r.to_vec()).collect();
    let header = vec!["KNACTOR", "RECONCILES/S", "ERRORS", "QUEUED"];
    let widths = [20, 13, 8, 8].map(Constraint::Length).to_vec();
    frame.render_widget(table("Reconcilers", header, reconciler_rows, widths), reconcilers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_name_and_labels_and_rates_follow_their_growth() {
        let before = Samples::parse(
            "# TYPE x counter\nknactor_cast_edge_evaluations_total{spec=\"c\",edge=\"e\",outcome=\"written\"} 10\n# EOF\n",
        );
        let now = Samples::parse(
            "knactor_cast_edge_evaluations_total{spec=\"c\",edge=\"e\",outcome=\"written\"} 30\nknactor_cast_edge_evaluations_total{spec=\"c\",edge=\"e\",outcome=\"skipped\"} 5\nknactor_spec_lag_versions{spec=\"c\",store=\"k/s\"} 3\n",
        );
        let view = View::between(&before, &now, Duration::from_secs(2));
        assert_eq!(view.edges, [["c", "e", "12.5", "10.0", "0", "3"].map(str::to_owned)]);
    }
}
