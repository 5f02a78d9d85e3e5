//! Knactor: compose services through their state.
//!
//! A knactor keeps its state in its own stores and reacts only to changes there. Write one by
//! implementing [`Reconciler`] and registering it in a [`Registry`]; run an app with
//! [`App`] (or `knactor up`, from the `knactor-cli` crate). The crate re-exports what a
//! reconciler needs ([`async_trait`], [`serde_json`], [`Object`], [`Write`]), so an app depends on
//! it alone.
//!
//! Layout:
//! - [`reconciler`]: the SDK: `Reconciler`, `Context`, scoped `StoreHandle`s.
//! - [`controller`]: the runtime that feeds a reconciler the changes of its stores.
//! - [`logins`]: the exchange each knactor and integrator acts through (its own Redis user).
//! - [`manifest`]: the `Knactor` and `App` manifests.
//! - [`policy`]: the `Policy` manifest: grants declared beyond each principal's own.
//! - [`app`]: loading and running an app: exchange, stores, controllers, integrators, API.
//! - [`knactors`]: the knactors a process runs, reconfigured live by applying a manifest.
//! - [`migration`]: how a store's objects take the shape of a new schema.
//! - [`specs`]: the integrator specs of a running app, applied and re-applied by name;
//!   [`shadow`]: a new version run beside a live one, and compared with it; [`tap`]: what
//!   passes through the edges, to whoever listens.
//! - [`api`]: the HTTP API.

pub mod api;
pub mod app;
pub mod composition;
pub mod controller;
mod follow;
pub mod handled;
pub mod knactors;
pub mod logins;
pub mod manifest;
pub mod metered;
pub mod metrics;
pub mod migration;
pub mod policy;
pub mod private_file;
mod queue;
pub mod reconciler;
mod restore;
pub mod retention;
pub mod shadow;
pub mod specs;
pub mod tap;
pub mod why;

pub use app::{App, AppConfig, AppOptions};
pub use async_trait::async_trait;
pub use data_exchange::{Object, Write};
pub use reconciler::{
    Action, Change, Context, LogHandle, ReconcileError, Reconciler, Registry, StoreHandle,
};
pub use serde_json;
