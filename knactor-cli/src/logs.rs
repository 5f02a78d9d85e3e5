//! `knactor log append | tail` and `knactor query`: Log stores over the HTTP API.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;

use crate::client::Client;

#[derive(Debug, Subcommand)]
pub(super) enum LogCommand {
    /// Appends the records of a JSON-lines file, all or none.
    Append(AppendArgs),
    /// Prints the records of a Log store, one JSON object a line.
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub(super) struct AppendArgs {
    /// The Log store, as <knactor>/<store>.
    store: String,
    /// A JSON-lines file (`-` reads stdin).
    #[arg(short, long)]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct TailArgs {
    /// The Log store, as <knactor>/<store>.
    store: String,
    /// The offset of the first record to print.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Keep printing records as they are appended.
    #[arg(short, long)]
    follow: bool,
}

pub(super) async fn log(client: &Client, command: LogCommand) -> anyhow::Result<()> {
    match command {
        LogCommand::Append(args) => {
            let text = if args.file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                std::fs::read_to_string(&args.file)
                    .with_context(|| format!("cannot read {}", args.file.display()))?
            };
            let appended = client.log_append(&args.store, text).await?;
            let count = appended["count"].as_u64().unwrap_or_default() as usize;
            println!(
                "{} appended at offset {}",
                knactor::specs::counted(count, "record"),
                appended["offset"]
            );
        }
        LogCommand::Tail(args) => {
            let mut records = client.log_tail(&args.store, args.from, args.follow).await?;
            let mut stdout = std::io::stdout();
            while let Some(record) = records.next().await {
                writeln!(stdout, "{}", record?)?;
                stdout.flush()?;
            }
        }
    }
    Ok(())
}

/// `knactor query` output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum QueryOutput {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    /// SQL over the Log stores; a store is a table named by its quoted ref: "house/motion".
    sql: String,
    /// Output format (json: an array of row objects).
    #[arg(short, long, value_enum, default_value = "table")]
    output: QueryOutput,
}

pub(super) async fn query(client: &Client, args: QueryArgs) -> anyhow::Result<()> {
    let format = match args.output {
        QueryOutput::Table => "table",
        QueryOutput::Json => "json",
        QueryOutput::Csv => "csv",
    };
    let text = client.query(&args.sql, format).await?;
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
