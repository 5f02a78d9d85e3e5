//! Handlers of `/v1/logs/...` and `/v1/query`: Log records and SQL.

use std::convert::Infallible;

use arrow::array::RecordBatch;
use axum::Extension;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use data_exchange::log::json_lines;
use data_exchange::{ExchangeError, StoreRef};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, Principal};

/// `POST .../records`: JSON lines (blank lines skipped) or one JSON array.
pub(super) async fn append(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store)): Path<(String, String)>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let store = StoreRef::new(&knactor, &store)?;
    let (records, lines) = parse_records(&body)?;
    let log = state.log_for(&principal, ("append", &store))?;
    let offset = log.append_json(&store, &records).await.map_err(|e| match e {
        // Name the record by its line in the body.
        ExchangeError::InvalidRecord { store, line, field, message } => {
            let line = lines.get(line - 1).copied().unwrap_or(line);
            ExchangeError::InvalidRecord { store, line, field, message }
        }
        other => other,
    })?;
    Ok(Json(json!({ "offset": offset, "count": records.len() })))
}

/// The records of a body and the line each came from.
fn parse_records(body: &str) -> Result<(Vec<Value>, Vec<usize>), ApiError> {
    if body.trim_start().starts_with('[') {
        let records: Vec<Value> = serde_json::from_str(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON array: {e}")))?;
        let lines = (1..=records.len()).collect();
        return Ok((records, lines));
    }
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let record = serde_json::from_str(line)
            .map_err(|e| ApiError::bad_request(format!("line {}: invalid JSON: {e}", i + 1)))?;
        records.push(record);
        lines.push(i + 1);
    }
    Ok((records, lines))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TailQuery {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    follow: bool,
}

/// `GET .../records`: the records from `from`, as JSON lines; with `follow`, then new ones.
pub(super) async fn tail(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path((knactor, store)): Path<(String, String)>,
    Query(query): Query<TailQuery>,
) -> Result<Response, ApiError> {
    let store = StoreRef::new(&knactor, &store)?;
    let log = state.log_for(&principal, ("tail", &store))?;
    let records = log.tail(&store, query.from).await?;
    let records = if query.follow {
        records.take_until(state.shutdown.clone().cancelled_owned()).boxed()
    } else {
        // Without `follow`, stop at the records there now.
        let end = log.end(&store).await?;
        futures::stream::unfold((records, query.from), move |(mut records, next)| async move {
            if next >= end {
                return None;
            }
            let item = records.next().await?;
            let after = item.as_ref().map_or(end, |r| r.end());
            Some((item, (records, after)))
        })
        .boxed()
    };
    let denials = super::guard::stream_denials(&state, &principal, "tail", &store);
    let lines = records.map(move |records| -> Result<Bytes, Infallible> {
        Ok(Bytes::from(match records {
            Ok(records) => json_lines(&[records.batch]),
            Err(e) => {
                denials(&e);
                format!("{}\n", ApiError::from(e).body()).into_bytes()
            }
        }))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryFormat {
    #[serde(default = "json_format")]
    format: String,
}

fn json_format() -> String {
    "json".to_owned()
}

/// `POST /v1/query`: the body is SQL; the answer a JSON array of rows, CSV, or a text table.
pub(super) async fn query(
    State(state): State<ApiState>,
    Query(format): Query<QueryFormat>,
    sql: String,
) -> Result<Response, ApiError> {
    let batches = state.log.query(&sql).await?;
    let (content_type, body) = match format.format.as_str() {
        "json" => {
            let mut writer = arrow::json::ArrayWriter::new(Vec::new());
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).map_err(|e| ApiError::bad_request(e.to_string()))?;
            writer.finish().map_err(|e| ApiError::bad_request(e.to_string()))?;
            let mut body = writer.into_inner();
            if body.is_empty() {
                body = b"[]".to_vec();
            }
            ("application/json", body)
        }
        "csv" => {
            let mut writer = arrow::csv::Writer::new(Vec::new());
            for batch in &batches {
                writer.write(batch).map_err(|e| ApiError::bad_request(e.to_string()))?;
            }
            ("text/csv", writer.into_inner())
        }
        "table" => {
            let table = arrow::util::pretty::pretty_format_batches(&batches)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            ("text/plain", format!("{table}\n").into_bytes())
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format `{other}`: use json, csv or table"
            )));
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
