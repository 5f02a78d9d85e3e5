//! `knactor check | apply | graph | integrate`: integrator specs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use integrators::graph::{Detail, Graph};
use integrators::source::{Diagnostics, SpecFile, parse_manifest};
use integrators::sync::spec::SyncSpec;

use crate::client::Client;
use knactor::app::{AppConfig, AppOptions, Schemas};
use knactor::composition::Footprint;
use knactor::specs::{self, ApplyError, Checked, Filled, Specs};

#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// Spec files (Cast or Sync).
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    /// An app directory whose stores the specs are checked against (schemas, ingest fields).
    #[arg(long)]
    app: Option<PathBuf>,
    /// The exchange the app is to run on, when not the one its manifest names: with `kube`,
    /// checks too that every Object store can be a Kubernetes custom resource.
    #[arg(long, requires = "app")]
    exchange: Option<String>,
}

pub(super) async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let app = args
        .app
        .as_deref()
        .map(|dir| AppConfig::load_for(dir, args.exchange.as_deref()))
        .transpose()?;
    let schemas = app.as_ref().map(AppConfig::schemas);
    let mut checked = Vec::new();
    for path in &args.specs {
        let file = SpecFile::read(path)?;
        let result = specs::check(&file, schemas.as_ref());
        checked.push((path, file, result));
    }
    // What each spec does to the composition: the app's other specs, then those checked here,
    // each beside those before it.
    let given: BTreeSet<&str> =
        checked.iter().filter_map(|(_, _, r)| r.as_ref().ok().map(Checked::name)).collect();
    let app_specs = app.iter().flat_map(|app| &app.footprints);
    let mut footprints: Vec<Footprint> =
        app_specs.filter(|f| !given.contains(f.name())).cloned().collect();
    let mut conflicts = Vec::new();
    for (_, file, result) in &checked {
        let found = match result {
            Ok(spec) => {
                let footprint = Footprint::of(file, spec);
                let found = footprint.conflicts(&footprints);
                footprints.push(footprint);
                found
            }
            Err(_) => Vec::new(),
        };
        conflicts.push(found);
    }
    // What each Cast spec fills: the app's, replaced by those checked here.
    let mut filled: BTreeMap<String, Filled> =
        app.as_ref().map(|app| app.filled.clone()).unwrap_or_default();
    for (_, _, result) in &checked {
        if let Ok(Checked::Cast(plan, _)) = result {
            filled.insert(plan.name.clone(), plan.filled());
        }
    }
    let mut failed = false;
    for ((path, _, result), conflicts) in checked.into_iter().zip(conflicts) {
        match result {
            Ok(_) if !conflicts.is_empty() => {
                eprintln!("{}", Diagnostics(conflicts));
                failed = true;
            }
            Ok(checked) => {
                if let Checked::Cast(plan, warnings) = &checked {
                    let others = filled.iter().filter(|(n, _)| **n != plan.name).map(|(_, f)| f);
                    let unfilled = specs::unfilled_warnings(plan, others);
                    for warning in warnings.0.iter().chain(&unfilled) {
                        eprintln!("{warning}");
                    }
                }
                let (kind, name) = (checked.kind(), checked.name());
                match (&checked, &schemas) {
                    (Checked::Sync(_), None) => println!(
                        "{}: ok (Sync `{name}`: its form and SQL syntax; pass --app to check columns and types)",
                        path.display()
                    ),
                    _ => {
                        println!("{}: ok ({kind} `{name}`, {})", path.display(), checked.counted())
                    }
                }
            }
            Err(ApplyError::Invalid(diagnostics)) => {
                eprintln!("{diagnostics}");
                failed = true;
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        bail!(HasErrors);
    }
    Ok(())
}

/// The error of a check whose problems were already printed.
#[derive(Debug, thiserror::Error)]
#[error("the specs have errors")]
pub(super) struct HasErrors;

#[derive(Debug, Args)]
pub(super) struct ApplyArgs {
    /// The file to apply to the running app: an integrator spec, or a knactor's manifest
    /// (repeatable: a knactor's manifest with the specs that fit it, applied at once). A
    /// manifest may change one store's schema (with `migrate:`), or add stores, and change its
    /// reconciler; it may not remove a store.
    #[arg(short, long, required = true)]
    file: Vec<PathBuf>,
    /// Runs each spec as a shadow beside the live spec of its name, on the same live changes,
    /// writing into copies of its targets (see `knactor diff spec`).
    #[arg(long)]
    shadow: bool,
}

pub(super) async fn apply(client: &Client, args: ApplyArgs) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    let is_knactor = |text: &str| {
        let doc: Option<serde_yaml::Value> = serde_yaml::from_str(text).ok();
        doc.is_some_and(|doc| doc.get("kind").and_then(|k| k.as_str()) == Some("Knactor"))
    };
    let (manifests, specs): (Vec<_>, Vec<_>) = files.into_iter().partition(|(_, t)| is_knactor(t));
    let reports = match <[_; 1]>::try_from(manifests) {
        Ok(_) if args.shadow => {
            bail!("--shadow is for Cast and Sync specs, not a knactor's manifest")
        }
        Ok([(file, text)]) => {
            let report = client.apply_knactor((&file, text), specs).await?;
            let evolved: Vec<String> =
                report.evolved.iter().map(|(s, v)| format!("{s} at schema version {v}")).collect();
            let evolved =
                if evolved.is_empty() { "no schema changed".into() } else { evolved.join(", ") };
            let added = match report.added.as_slice() {
                [] => String::new(),
                added => format!("; stores added: {}", added.join(", ")),
            };
            let reconciler = match &report.reconciler {
                Some(reconciler) => format!("; reconciler {reconciler} running"),
                None => String::new(),
            };
            println!("knactor/{} configured: {evolved}{added}{reconciler}", report.knactor);
            report.specs
        }
        Err(manifests) if manifests.is_empty() => {
            let mut reports = Vec::new();
            for (file, text) in specs {
                reports.push(client.apply(&file, text, args.shadow).await?);
            }
            reports
        }
        Err(_) => bail!("apply one knactor manifest at a time (with the specs that fit it)"),
    };
    for report in &reports {
        print_report(report);
    }
    Ok(())
}

/// `spec`: what `diff` and `promote` act on.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum SpecWord {
    Spec,
}

#[derive(Debug, Args)]
pub(super) struct DiffArgs {
    /// `spec`.
    what: SpecWord,
    /// The spec whose shadow to compare with it.
    name: String,
    /// Output format: table or json.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// `knactor diff spec NAME`: where the shadow's writes differ from the live spec's.
pub(super) async fn diff(client: &Client, args: DiffArgs) -> anyhow::Result<()> {
    let diff = client.diff_spec(&args.name).await?;
    let text = match args.output.as_str() {
        "json" => serde_json::to_string_pretty(&diff)? + "\n",
        _ => crate::output::shadow_diff(&diff),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct PromoteArgs {
    /// `spec`.
    what: SpecWord,
    /// The spec whose shadow becomes its live version.
    name: String,
}

/// `knactor promote spec NAME`: the shadow becomes the live version, at an event boundary.
pub(super) async fn promote(client: &Client, args: PromoteArgs) -> anyhow::Result<()> {
    let report = client.promote_spec(&args.name).await?;
    print_report(&specs::ApplyReport { created: false, ..report });
    println!("{}: shadow promoted; it runs no more", args.name);
    Ok(())
}

fn print_report(report: &specs::ApplyReport) {
    for warning in &report.warnings {
        eprintln!("{warning}");
    }
    let list = |parts: &[String]| if parts.is_empty() { "-".to_owned() } else { parts.join(", ") };
    let verb = match (report.shadow, report.created) {
        (true, _) => "shadow started beside the live spec; against it",
        (false, true) => "created",
        (false, false) => "configured",
    };
    let pushed = match report.pushed_down {
        0 => String::new(),
        n => format!("; {n} pushed down"),
    };
    println!(
        "{}/{} {verb}: {}s added: {}; removed: {}; changed: {}{pushed}",
        report.kind.to_lowercase(),
        report.name,
        specs::part(&report.kind),
        list(&report.added),
        list(&report.removed),
        list(&report.changed)
    );
}

/// Formats of `knactor graph`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum GraphFormat {
    Dot,
    Mermaid,
    Svg,
}

#[derive(Debug, Args)]
pub(super) struct GraphArgs {
    /// The Cast and Sync specs to draw, as one graph.
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    /// Output format (svg needs Graphviz `dot`).
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
    /// Labels with names and fields or operators only, without conditions and expressions.
    #[arg(long)]
    brief: bool,
}

pub(super) async fn graph(args: GraphArgs) -> anyhow::Result<()> {
    let mut graph = Graph::new(if args.brief { Detail::Brief } else { Detail::Full });
    for path in &args.specs {
        let file = SpecFile::read(path)?;
        match specs::check(&file, None).map_err(as_anyhow)? {
            Checked::Cast(plan, _) => graph.add_cast(&plan),
            Checked::Sync(_) => graph.add_sync(&parse_manifest::<SyncSpec>(&file, "Sync")?.spec),
        }
    }
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
        GraphFormat::Svg => render_svg(&graph.to_dot())?,
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}

/// Renders DOT to SVG with Graphviz.
fn render_svg(dot: &str) -> anyhow::Result<String> {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|_| {
            anyhow::anyhow!(
                "--format svg needs Graphviz `dot`, which is not installed: install it (e.g. `apt-get install graphviz`), or use --format dot or mermaid"
            )
        })?;
    child.stdin.take().expect("piped").write_all(dot.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("Graphviz `dot` failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?)
}

#[derive(Debug, Args)]
pub(super) struct IntegrateArgs {
    /// The Cast or Sync specs to run (repeat `-f` for several).
    #[arg(short, long, required = true)]
    file: Vec<PathBuf>,
    /// The app whose stores the specs connect (their schemas validate every write).
    #[arg(long)]
    app: PathBuf,
    /// The exchange, overriding the app manifest's: redis://HOST:PORT[/DB], or
    /// kube[://?context=C&namespace=NS] for the Object stores.
    #[arg(long)]
    exchange: Option<String>,
    /// Pushes the Cast edges Redis can run down into it, to run inside the writes of their
    /// source (see docs/cli.md).
    #[arg(long)]
    pushdown: bool,
    #[command(flatten)]
    traces: crate::traces::TraceArgs,
}

/// An [`ApplyError`] for the CLI, with a spec's diagnostics kept as such.
fn as_anyhow(error: ApplyError) -> anyhow::Error {
    match error {
        ApplyError::Invalid(diagnostics) => diagnostics.into(),
        other => other.into(),
    }
}

/// Runs integrators on their own, for deployments whose knactors run in other processes.
pub(super) async fn integrate(args: IntegrateArgs) -> anyhow::Result<()> {
    let config = AppConfig::load_for(&args.app, args.exchange.as_deref())?;
    let traces = args.traces.export()?;
    let url = args.exchange.as_deref().unwrap_or(&config.manifest.spec.exchange.object);
    let exchanges = config.connect(args.exchange.as_deref(), Schemas::Held).await?;
    let schemas = config.schemas();
    let mut files = Vec::new();
    for path in &args.file {
        // Every spec is checked before any starts.
        let file = SpecFile::read(path).map_err(Diagnostics::from)?;
        specs::check(&file, Some(&schemas)).map_err(as_anyhow)?;
        files.push(file);
    }
    let options = AppOptions {
        exchange: args.exchange.clone(),
        pushdown: args.pushdown,
        ..AppOptions::default()
    };
    let logins = config.logins(exchanges.clone(), &options).await?;
    let specs = Specs::new(exchanges, schemas).with_pushdown(args.pushdown).with_logins(logins);
    let specs = specs.with_policies(config.policies.clone());
    let mut reports = Vec::new();
    for file in &files {
        reports.push(specs.apply(file).await.map_err(as_anyhow)?);
    }
    // Printed once all run: the first line tells a supervisor the integrators are up.
    for report in reports {
        let pushed = match report.pushed_down {
            0 => String::new(),
            n => format!(", {n} pushed down"),
        };
        println!(
            "knactor: integrating {} `{}` ({}{pushed}) on {url}",
            report.kind,
            report.name,
            specs::counted(report.added.len(), specs::part(&report.kind))
        );
    }
    std::io::stdout().flush()?;
    super::up::wait_for_signal().await;
    specs.stop().await;
    if let Some(traces) = traces {
        traces.finish().await;
    }
    Ok(())
}
