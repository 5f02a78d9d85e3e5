//! `apps/smart-home`: a house, a motion sensor and smart lamps. The house's settings reach the
//! sensor, occupancy turns lamps on except during sleep hours (Cast,
//! `dxg-specs/smart-home/home.yaml`); readings become the house's motion events and energy
//! per room per minute (Sync, `dxg-specs/smart-home/readings.yaml`). The lamp knactor knows
//! only lamps; the devices are simulated by `knactor demo smart-home`.

use knactor::async_trait;
use knactor::serde_json::json;
use knactor::{Action, Change, Context, ReconcileError, Reconciler, Registry};

/// A lamp's draw at full brightness, in watts.
pub const LAMP_WATTS: f64 = 60.0;

/// Registers `home.lamp`.
pub fn register(registry: &mut Registry) {
    registry.register("home.lamp", Lamp);
}

/// A lamp's draw at `brightness` (0–100), in watts.
pub fn power(brightness: f64) -> f64 {
    LAMP_WATTS * brightness / 100.0
}

/// A smart lamp: on when its brightness is above 0, drawing power in proportion to it.
#[derive(Debug)]
pub struct Lamp;

#[async_trait]
impl Reconciler for Lamp {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(object) = &change.object else { return Ok(Action::Done) };
        let brightness = object.data["brightness"].as_f64().unwrap_or(0.0);
        let state = json!({ "on": brightness > 0.0, "power": power(brightness) });
        // The exchange skips writes that change nothing: no reconcile loop.
        ctx.store(&change.store)?.patch(&change.name, state).await?;
        Ok(Action::Done)
    }
}
