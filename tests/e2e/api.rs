//! Raw requests to the HTTP API of a running `knactor up`, and what it answers.

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::harness::Up;

/// An answer of the API.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

/// Sends requests to one server.
pub(crate) struct Api {
    pub(crate) server: String,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(up: &Up) -> Api {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        Api {
            server: up.server.clone(),
            runtime,
            http: knactor_cli::client::http_client(reqwest::Client::builder()).unwrap(),
        }
    }

    /// `method path` with `token` (if any), extra `headers` and a `body` of `content_type`.
    pub(crate) fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&'static str, &str)],
        body: Option<(&str, &str)>,
    ) -> Answer {
        let body = body.map(|(content_type, body)| (content_type, body.as_bytes().to_vec()));
        self.send_bytes(method, path, token, headers, body)
    }

    /// [`Api::send`] with a body of any bytes.
    pub(crate) fn send_bytes(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&'static str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.server));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).unwrap());
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            let text = response.text().await.unwrap();
            let body = serde_json::from_str(&text).unwrap_or(Value::Null);
            Answer { status, headers, body, text }
        })
    }

    /// `method path` with `token` and a JSON `body`, written as they are on a connection of
    /// its own (no client library normalizes the path, `.` segments included), declaring a
    /// `Content-Length` of `length`: a body may be cut short of what it claims.
    pub(crate) fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &[u8],
        length: usize,
    ) -> Answer {
        use std::io::{Read, Write};
        let host = self.server.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        // The server may answer and close before it has read all: what it said counts.
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let (head, text) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = serde_json::from_str(text).unwrap_or(Value::Null);
        Answer { status, headers: HeaderMap::new(), body, text: text.to_owned() }
    }

    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, &[], None)
    }
}

/// Asserts a refusal: its status, reason, and (for a 403) who was denied what.
#[track_caller]
pub(crate) fn assert_denied(answer: &Answer, status: u16, reason: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["type"], "Error", "{answer:?}");
    assert_eq!(answer.body["reason"], reason, "{answer:?}");
}
