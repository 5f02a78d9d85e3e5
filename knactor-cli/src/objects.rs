//! `knactor get | put | patch | delete`: objects over the HTTP API.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use futures::StreamExt;
use integrators::source::SpecFile;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::output::Output;
use crate::client::{Client, ClientError};

#[derive(Debug, Args)]
pub(super) struct GetArgs {
    /// What to get: a store's objects (<knactor>/<store>), `stores` (every store, Object and
    /// Log: the default) or `specs` (the running integrator specs).
    store: Option<String>,
    /// The objects' names; every object when omitted.
    names: Vec<String>,
    /// Output format: table, wide (the whole data), name, yaml, json, or jsonpath=EXPR (also
    /// kubectl's `{.data.x}`).
    #[arg(short, long, default_value = "table")]
    output: Output,
    /// After printing, keep printing every change (of the store, or of NAME).
    #[arg(short, long)]
    watch: bool,
    /// Only the objects for which this CEL condition holds, over `name`, `version` and `data`
    /// (e.g. `data.total > 100 && data.status == "placed"`).
    #[arg(long = "where", value_name = "CEL", value_parser = Condition::parse)]
    condition: Option<Condition>,
    /// Show what keeps each object from being collected (its store's `retention`): `keep`,
    /// `unfinished`, the consumers that have not handled it yet, `source:STORE`; `-` when none
    /// of these holds it.
    #[arg(long)]
    show_retention: bool,
}

/// A `--where` condition, compiled once, and whether it was said that it fails on an object.
#[derive(Clone)]
struct Condition(
    std::sync::Arc<integrators::cast::expr::CelExpr>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.source())
    }
}

impl Condition {
    fn parse(source: &str) -> Result<Self, String> {
        let expr = integrators::cast::expr::CelExpr::compile(source).map_err(|e| e.to_string())?;
        Ok(Condition(std::sync::Arc::new(expr), std::sync::Arc::default()))
    }

    /// Whether it holds for `object` (`{name, version, data}`). One it cannot be evaluated on
    /// (a field it names missing there) is not a match; the first such is said on stderr.
    fn holds(&self, object: &Value) -> bool {
        use integrators::cast::expr::{base_context, json_to_cel};
        let context = base_context();
        let mut scope = context.new_inner_scope();
        for field in ["name", "version", "data"] {
            scope.add_variable_from_value(field, json_to_cel(&object[field]));
        }
        let why = match self.0.eval(&scope) {
            Ok(Value::Bool(holds)) => return holds,
            Ok(other) => format!("gives {other}, not true or false"),
            Err(e) => e.to_string(),
        };
        if !self.1.swap(true, std::sync::atomic::Ordering::Relaxed) {
            let name = &object["name"];
            eprintln!(
                "warning: --where `{}` on {name}: {why}; such objects do not match",
                self.0.source()
            );
        }
        false
    }

    /// `value` (a list `{items}` or one object) with only the objects it holds for.
    fn filter(&self, mut value: Value) -> Value {
        if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
            items.retain(|item| self.holds(item));
        } else if !self.holds(&value) {
            return serde_json::json!({ "items": [] });
        }
        value
    }
}

/// Prints the objects of `store`, then every change, as events (`Added` first). A watch the
/// server can no longer resume (`Expired`) is followed by a re-list: what changed meanwhile is
/// printed as the events that lead to it (an object gone as `Deleted`), and the watch goes on.
async fn watch(
    client: &Client,
    store: &str,
    args: &GetArgs,
    stdout: &mut std::io::Stdout,
) -> anyhow::Result<()> {
    if let Some(header) = args.output.event_header() {
        stdout.write_all(header.as_bytes())?;
    }
    let mut print = |event: Value| -> anyhow::Result<()> {
        let object = &event["object"];
        let named = |n: &String| object["name"] == n.as_str();
        let shown = (args.names.is_empty() || args.names.iter().any(named))
            && args.condition.as_ref().is_none_or(|c| c.holds(object));
        if shown {
            stdout.write_all(args.output.render_event(&event).as_bytes())?;
            stdout.flush()?;
        }
        Ok(())
    };
    // The objects as last printed, by name.
    let mut known = std::collections::BTreeMap::<String, Value>::new();
    loop {
        let list = client.list(store).await?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let listed: std::collections::BTreeMap<String, Value> =
            items.into_iter().filter_map(|o| Some((o["name"].as_str()?.to_owned(), o))).collect();
        for (name, gone) in &known {
            if !listed.contains_key(name) {
                print(serde_json::json!({"type": "Deleted", "object": gone}))?;
            }
        }
        for (name, object) in &listed {
            let kind = match known.get(name) {
                None => "Added",
                Some(old) if old["version"] != object["version"] => "Modified",
                Some(_) => continue,
            };
            print(serde_json::json!({"type": kind, "object": object}))?;
        }
        known = listed;
        let from = list["version"].as_u64().unwrap_or_default();
        let expired = || eprintln!("knactor: the watch of {store} expired: re-listing");
        let mut events = match client.watch_from(store, from).await {
            Err(e) if is_expired(&e) => {
                expired();
                continue;
            }
            events => events?,
        };
        loop {
            match events.next().await {
                None => return Ok(()),
                Some(Err(e)) if is_expired(&e) => {
                    expired();
                    break;
                }
                Some(event) => {
                    let event = event?;
                    let name = event["object"]["name"].as_str().unwrap_or_default().to_owned();
                    match event["type"].as_str() {
                        Some("Deleted") => known.remove(&name),
                        _ => known.insert(name, event["object"].clone()),
                    };
                    print(event)?;
                }
            }
        }
    }
}

/// Whether `error` says a watch can no longer resume from where it was asked to.
fn is_expired(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { reason, .. } if reason == "Expired")
}

pub(super) async fn get(client: &Client, args: GetArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    let store = match args.store.as_deref() {
        None | Some("stores") => {
            anyhow::ensure!(
                args.names.is_empty() && !args.watch,
                "`knactor get stores` takes no name and no --watch"
            );
            anyhow::ensure!(args.condition.is_none(), "--where is for the objects of a store");
            let stores = client.stores().await?;
            let text = match &args.output {
                Output::Table | Output::Wide => crate::output::store_table(&stores),
                Output::Name => crate::output::names(&stores["stores"], "store"),
                output => output.render(&stores),
            };
            stdout.write_all(text.as_bytes())?;
            return Ok(());
        }
        Some(store) => store,
    };
    if store == "specs" || store == "spec" {
        anyhow::ensure!(
            args.names.is_empty() && !args.watch && args.condition.is_none(),
            "`knactor get specs` takes no name, no --watch and no --where"
        );
        let specs = client.specs().await?;
        let text = match &args.output {
            Output::Table | Output::Wide => crate::output::spec_table(&specs),
            Output::Name => specs.iter().map(|s| format!("{}\n", s.name)).collect(),
            output => output.render(&serde_json::json!({ "specs": specs })),
        };
        stdout.write_all(text.as_bytes())?;
        return Ok(());
    }
    anyhow::ensure!(
        !args.show_retention || (args.names.is_empty() && !args.watch),
        "--show-retention lists a whole store: it takes no name and no --watch"
    );
    if args.watch {
        return watch(client, store, &args, &mut stdout).await;
    }
    // As kubectl does: the objects found are printed, then the names not found are an error.
    let mut missing = Vec::new();
    let value = match &args.names[..] {
        [] if args.show_retention => client.list_retention(store).await?,
        [] => client.list(store).await?,
        [name] => client.get(store, name).await?,
        names => {
            let mut items = Vec::new();
            for name in names {
                match client.get(store, name).await {
                    Ok(object) => items.push(object),
                    Err(ClientError::Api { status: StatusCode::NOT_FOUND, reason, .. })
                        if reason == "NotFound" =>
                    {
                        missing.push(format!("`{name}`"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            serde_json::json!({ "items": items })
        }
    };
    let value = match &args.condition {
        Some(condition) => condition.filter(value),
        None => value,
    };
    stdout.write_all(args.output.render(&value).as_bytes())?;
    anyhow::ensure!(missing.is_empty(), "{store}: not found: {}", missing.join(", "));
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct PutArgs {
    /// The store, as <knactor>/<store>.
    store: String,
    /// The object file (YAML or JSON: `name`, `data`, optional `version`); `-` reads stdin.
    #[arg(short, long)]
    file: PathBuf,
}

/// An object file for `knactor put`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectFile {
    name: String,
    /// When present, the write succeeds only if the object is at this version.
    #[serde(default)]
    version: Option<u64>,
    data: Value,
}

pub(super) async fn put(client: &Client, args: PutArgs) -> anyhow::Result<()> {
    let file = read_spec(&args.file)?;
    let object: ObjectFile = file.parse()?;
    let written = client.put(&args.store, &object.name, object.data, object.version).await?;
    print_written(&written, "written");
    Ok(())
}

fn read_spec(path: &Path) -> anyhow::Result<SpecFile> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read stdin")?;
        return Ok(SpecFile::from_text(Path::new("<stdin>"), text));
    }
    Ok(SpecFile::read(path)?)
}

#[derive(Debug, Args)]
pub(super) struct PatchArgs {
    /// The store, as <knactor>/<store>.
    store: String,
    /// The object's name.
    name: String,
    /// A JSON merge patch (RFC 7386) of the object's data.
    #[arg(short, long)]
    patch: String,
}

pub(super) async fn patch(client: &Client, args: PatchArgs) -> anyhow::Result<()> {
    let patch: Value = serde_json::from_str(&args.patch)
        .with_context(|| format!("the patch is not valid JSON: {}", args.patch))?;
    let written = client.patch(&args.store, &args.name, &patch).await?;
    print_written(&written, "patched");
    Ok(())
}

#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    /// The store, as <knactor>/<store>; or `spec`, to stop the running spec NAME (its
    /// checkpoint is kept: applying it again resumes).
    store: String,
    /// The object's (or spec's) name.
    name: String,
    /// With `spec`: stop the shadow run beside the spec instead; the live spec runs on.
    #[arg(long)]
    shadow: bool,
}

pub(super) async fn delete(client: &Client, args: DeleteArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.shadow || args.store == "spec", "--shadow is for `delete spec NAME`");
    if args.shadow {
        let deleted = client.delete_shadow(&args.name).await?;
        println!("shadow of {} deleted (it ran since {})", deleted.name, deleted.since);
        return Ok(());
    }
    if args.store == "spec" || args.store == "specs" {
        let deleted = client.delete_spec(&args.name).await?;
        println!(
            "{}/{} deleted (it was at version {})",
            deleted.kind.to_lowercase(),
            deleted.name,
            deleted.version
        );
        return Ok(());
    }
    let deleted = client.delete(&args.store, &args.name).await?;
    print_written(&deleted, "deleted");
    Ok(())
}

fn print_written(object: &Value, what: &str) {
    let (name, version) = (object["name"].as_str().unwrap_or_default(), &object["version"]);
    println!("{name} {what} (version {version})");
}
