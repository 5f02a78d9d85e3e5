//! `apps/retail`: the checkout, shipping, payment and email knactors of an online shop. Each
//! works on its own stores only; `dxg-specs/retail/` composes them.

pub mod card;
pub mod demo;

use async_trait::async_trait;
use knactor::{Action, Change, Context, ReconcileError, Reconciler, Registry};
use serde_json::{Value, json};

/// Registers `retail.checkout`, `retail.shipping` (and its version 2, `retail.shipping-v2`),
/// `retail.payment` and `retail.email`.
pub fn register(registry: &mut Registry) {
    registry
        .register("retail.checkout", Checkout)
        .register("retail.shipping", Shipping::V1)
        .register("retail.shipping-v2", Shipping::V2)
        .register("retail.payment", Payment)
        .register("retail.email", Email);
}

/// Prices orders; completes them once they are shipped and paid, or declines them when the
/// payment is refused.
#[derive(Debug)]
pub struct Checkout;

#[async_trait]
impl Reconciler for Checkout {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(order) = &change.object else { return Ok(Action::Done) };
        let data = &order.data;
        let total: f64 = data["items"]
            .as_array()
            .map(|items| items.iter().map(line_total).sum())
            .unwrap_or_default();
        let total = (total * 100.0).round() / 100.0;
        let mut patch = serde_json::Map::new();
        if data["total"].as_f64() != Some(total) {
            patch.insert("total".into(), json!(total));
        }
        let fulfilled = data.get("trackingID").is_some() && data.get("paymentID").is_some();
        if data["status"] == "placed" && fulfilled {
            patch.insert("status".into(), json!("completed"));
        } else if data["status"] == "placed" && data.get("paymentError").is_some() {
            patch.insert("status".into(), json!("declined"));
        }
        if !patch.is_empty() {
            ctx.store(&change.store)?.patch(&change.name, Value::Object(patch)).await?;
        }
        Ok(Action::Done)
    }
}

fn line_total(item: &Value) -> f64 {
    item["qty"].as_f64().unwrap_or(0.0) * item["price"].as_f64().unwrap_or(0.0)
}

/// Quotes and books shipments: a cost by method and item count, and a tracking ID.
#[derive(Debug)]
pub struct Shipping {
    /// The field the tracking ID is written to.
    tracking: &'static str,
    /// The field that must be set (besides items and method) before a shipment is booked.
    destination: &'static str,
}

impl Shipping {
    /// Version 1: `address` (an object) in, `trackingID` out.
    pub const V1: Shipping = Shipping { tracking: "trackingID", destination: "address" };
    /// Version 2: `destination` (one line) in, `tracking` out.
    pub const V2: Shipping = Shipping { tracking: "tracking", destination: "destination" };
}

#[async_trait]
impl Reconciler for Shipping {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(shipment) = &change.object else { return Ok(Action::Done) };
        let data = &shipment.data;
        let (Some(items), Some(method)) = (data["items"].as_array(), data["method"].as_str())
        else {
            return Ok(Action::Done); // Not requested yet.
        };
        if data.get(self.destination).is_none() {
            return Ok(Action::Done);
        }
        let count: f64 = items.iter().map(|i| i["qty"].as_f64().unwrap_or(1.0)).sum();
        let (base, per_item) = if method == "air" { (15.0, 2.0) } else { (5.0, 1.0) };
        let cost = base + per_item * count;
        let mut patch = json!({ "cost": cost });
        if data.get(self.tracking).is_none() {
            let id = format!("1Z{:010X}", fnv1a(&change.name) & 0xFF_FFFF_FFFF);
            patch[self.tracking] = json!(id);
        }
        ctx.store(&change.store)?.patch(&change.name, patch).await?;
        Ok(Action::Done)
    }
}

/// Charges cards: a valid card (Luhn checksum, not expired) gets a transaction ID, any other
/// a `declined` reason.
#[derive(Debug)]
pub struct Payment;

#[async_trait]
impl Reconciler for Payment {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(charge) = &change.object else { return Ok(Action::Done) };
        let data = &charge.data;
        let decided = data.get("transactionID").is_some() || data.get("declined").is_some();
        if data.get("amount").is_none() || decided {
            return Ok(Action::Done);
        }
        let outcome = match card::check(&data["card"], card::this_month()) {
            Ok(()) => json!({ "transactionID": format!("txn-{:08x}", fnv1a(&change.name) as u32) }),
            Err(reason) => json!({ "declined": reason }),
        };
        ctx.store(&change.store)?.patch(&change.name, outcome).await?;
        Ok(Action::Done)
    }
}

/// Sends order confirmations: each requested one once, as a record of its `sent` Log store.
#[derive(Debug)]
pub struct Email;

#[async_trait]
impl Reconciler for Email {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(request) = &change.object else { return Ok(Action::Done) };
        let data = &request.data;
        let (Some(to), Some(total)) = (data["to"].as_str(), data["total"].as_f64()) else {
            return Ok(Action::Done);
        };
        if data["sent"] == true {
            return Ok(Action::Done);
        }
        let tracking = data["trackingID"].as_str().unwrap_or("on its way");
        let email = json!({
            "to": to,
            "subject": format!("Your order {} is confirmed", change.name),
            "body": format!("Thank you! We charged ${total:.2}. Tracking: {tracking}."),
        });
        // Sent before it is marked: a crash in between sends it again, never loses it.
        ctx.log("sent")?.append(&[email]).await?;
        ctx.store(&change.store)?.patch(&change.name, json!({ "sent": true })).await?;
        Ok(Action::Done)
    }
}

/// A stable 64-bit hash (FNV-1a), for IDs derived from object names.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
