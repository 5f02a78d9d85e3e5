//! Integration tests of the knactor runtime: controllers over a real embedded exchange.

mod controller;
mod deny_matrix;
mod formats;
mod retention;
mod seed;
mod serving;
