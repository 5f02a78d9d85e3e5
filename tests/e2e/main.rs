//! End-to-end tests: the real `knactor` binary, its HTTP API and CLI, on the embedded exchange,
//! on a real `redis-server` and on a real kube-apiserver.

mod access;
mod api;
mod bad_input;
mod bench;
mod cast;
mod chaos;
mod cli;
mod console;
mod crash;
mod demo;
#[cfg(feature = "kube")]
mod deploy;
mod docs;
mod harness;
mod hostile;
mod kube;
mod logs;
mod metrics;
mod openapi;
mod pushdown;
mod redis_users;
mod retail;
mod retention;
mod schemas;
mod split;
mod sync;
mod tasks;
mod traces;
mod walkthrough;
mod why;
