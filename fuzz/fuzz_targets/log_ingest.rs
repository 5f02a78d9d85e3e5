//! JSON lines into the Log exchange, as `POST .../records` sends them: a batch is appended
//! whole or refused whole, and what is appended reads back as JSON lines that parse, from a
//! tail and from SQL.

#![no_main]

use std::time::Duration;

use data_exchange::log::json_lines;
use data_exchange::{EmbeddedLog, LogExchange};
use futures::StreamExt;
use knactor_fuzz::{app_schemas, runtime};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|input: (u8, &str)| {
    let (pick, text) = input;
    let Ok(records) = text.lines().map(serde_json::from_str).collect::<Result<Vec<Value>, _>>()
    else {
        return;
    };
    runtime().block_on(async {
        let log = EmbeddedLog::in_memory();
        let schemas = &app_schemas().logs;
        for (store, schema) in schemas {
            log.register(store, schema).await.expect("the apps' Log schemas register");
        }
        let store = schemas.keys().nth(usize::from(pick) % schemas.len()).unwrap();
        match log.append_json(store, &records).await {
            Ok(_) => assert_eq!(log.end(store).await.unwrap(), records.len() as u64),
            Err(_) => {
                assert_eq!(log.end(store).await.unwrap(), 0, "a refused batch appends nothing")
            }
        }
        let end = log.end(store).await.unwrap();
        let mut tail = log.tail(store, 0).await.unwrap();
        let mut read = 0;
        while read < end {
            let next = tokio::time::timeout(Duration::from_secs(5), tail.next()).await;
            let records = next.expect("the tail delivers what is stored").unwrap().unwrap();
            read = records.end();
            parses_as_json_lines(&json_lines(&[records.batch]));
        }
        let sql = format!("SELECT * FROM \"{store}\"");
        parses_as_json_lines(&json_lines(&log.query(&sql).await.expect("the store is queried")));
    });
});

fn parses_as_json_lines(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("JSON lines are UTF-8");
    for line in text.lines() {
        let _: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}
