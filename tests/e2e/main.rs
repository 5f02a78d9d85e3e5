//! End-to-end tests: the real `knactor` binary, its HTTP API and CLI, on the embedded exchange
//! and on a real `redis-server`.

mod bad_input;
mod bench;
mod cast;
mod cli;
mod crash;
mod demo;
mod harness;
mod logs;
mod pushdown;
mod retail;
mod split;
mod sync;
mod tasks;
