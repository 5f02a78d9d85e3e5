//! Knactor: compose services through their state.
//!
//! A knactor keeps its state in its own stores and reacts only to changes there. Write one by
//! implementing [`Reconciler`] and registering it in a [`Registry`]; run an app with
//! [`App`] (or `knactor up`).
//!
//! Layout:
//! - [`reconciler`]: the SDK: `Reconciler`, `Context`, scoped `StoreHandle`s.
//! - [`controller`]: the runtime that feeds a reconciler the changes of its stores.
//! - [`manifest`]: the `Knactor` and `App` manifests.
//! - [`app`]: loading and running an app: exchange, stores, controllers, integrators, API.
//! - [`specs`]: the integrator specs of a running app, applied and re-applied by name.
//! - [`api`]: the HTTP API; [`client`] talks to it.
//! - [`cli`]: the `knactor` command line.

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod controller;
pub mod demo;
pub mod manifest;
pub mod metrics;
mod queue;
pub mod reconciler;
pub mod specs;

pub use app::{App, AppConfig, AppOptions};
pub use data_exchange::{Object, Write};
pub use demo::{Demo, DemoApp, DemoOptions, Demos};
pub use reconciler::{
    Action, Change, Context, LogHandle, ReconcileError, Reconciler, Registry, StoreHandle,
};
