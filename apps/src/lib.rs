//! The example apps' knactors, and the registry the `knactor` binary runs them from.
//!
//! - [`hello`]: two small knactors that show the runtime (`apps/hello`).
//! - [`retail`]: the eleven services of an online shop (`apps/retail`).
//! - [`smart_home`]: a house, a motion sensor and lamps (`apps/smart-home`).
//!
//! Their demos (`knactor demo`) drive them from the `knactor-cli` crate.

pub mod hello;
pub mod retail;
pub mod smart_home;

use knactor::Registry;

/// Every reconciler of the example apps, by the names their manifests use.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    hello::register(&mut registry);
    retail::register(&mut registry);
    smart_home::register(&mut registry);
    registry
}
