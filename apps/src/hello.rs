//! `apps/hello`: a greeter that answers every name written to its store, and a counter that
//! counts the words of every text written to its store. No integrator: each knactor reacts to
//! its own store only.

use knactor::async_trait;
use knactor::serde_json::json;
use knactor::{Action, Change, Context, ReconcileError, Reconciler, Registry};

/// Registers `hello.greeter` and `hello.counter`.
pub fn register(registry: &mut Registry) {
    registry.register("hello.greeter", Greeter).register("hello.counter", Counter);
}

/// Fills `greeting` from `name`.
#[derive(Debug)]
pub struct Greeter;

#[async_trait]
impl Reconciler for Greeter {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(object) = &change.object else { return Ok(Action::Done) };
        let Some(name) = object.data["name"].as_str() else { return Ok(Action::Done) };
        let greeting = format!("Hello, {name}!");
        if object.data["greeting"] != greeting.as_str() {
            ctx.store(&change.store)?.patch(&change.name, json!({ "greeting": greeting })).await?;
        }
        Ok(Action::Done)
    }
}

/// Fills `words` and `characters` from `text`.
#[derive(Debug)]
pub struct Counter;

#[async_trait]
impl Reconciler for Counter {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(object) = &change.object else { return Ok(Action::Done) };
        let text = object.data["text"].as_str().unwrap_or_default();
        let counts = json!({
            "words": text.split_whitespace().count(),
            "characters": text.chars().count(),
        });
        // The exchange skips writes that change nothing, so re-patching the same counts
        // does not trigger another reconcile.
        ctx.store(&change.store)?.patch(&change.name, counts).await?;
        Ok(Action::Done)
    }
}
