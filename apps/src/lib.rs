//! The example apps' knactors, and the registry the `knactor` binary runs them from.
//!
//! - [`hello`]: two small knactors that show the runtime (`apps/hello`).
//! - [`retail`]: checkout, shipping and payment of an online shop (`apps/retail`).

pub mod hello;
pub mod retail;

use knactor::Registry;

/// Every reconciler of the example apps, by the names their manifests use.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    hello::register(&mut registry);
    retail::register(&mut registry);
    registry
}
