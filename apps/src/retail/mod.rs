//! `apps/retail`: the eleven services of an online shop (Google's Online Boutique) as
//! knactors — frontend, cart, productcatalog (a store seeded with the catalog), currency,
//! checkout, payment, shipping, email, recommendation, ad and loadgenerator. Each works on its
//! own stores only; `dxg-specs/retail/` composes them.

pub mod ad;
pub mod card;
pub mod frontend;
pub mod loadgenerator;

use knactor::async_trait;
use knactor::serde_json::{Value, json};
use knactor::{Action, Change, Context, ReconcileError, Reconciler, Registry};

/// Registers `retail.checkout`, `retail.shipping` (and its version 2, `retail.shipping-v2`),
/// `retail.payment`, `retail.email`, `retail.currency`, `retail.cart`,
/// `retail.recommendation`, `retail.frontend`, `retail.ad` and `retail.loadgenerator`.
pub fn register(registry: &mut Registry) {
    registry
        .register("retail.checkout", Checkout)
        .register("retail.shipping", Shipping::V1)
        .register("retail.shipping-v2", Shipping::V2)
        .register("retail.payment", Payment)
        .register("retail.email", Email)
        .register("retail.currency", Currency)
        .register("retail.cart", Cart)
        .register("retail.recommendation", Recommendation)
        .register("retail.frontend", frontend::Frontend)
        .register("retail.ad", ad::Ad)
        .register("retail.loadgenerator", loadgenerator::LoadGenerator);
}

/// Takes new orders (no status yet) as placed and prices them; completes them once they are shipped and paid, or declines them when the
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
        let mut patch = knactor::serde_json::Map::new();
        if data["total"].as_f64() != Some(total) {
            patch.insert("total".into(), json!(total));
        }
        let fulfilled = data.get("trackingID").is_some() && data.get("paymentID").is_some();
        if data.get("status").is_none() {
            patch.insert("status".into(), json!("placed"));
        } else if data["status"] == "placed" && fulfilled {
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

/// Quotes and books shipments: a cost by method, item count and destination, and a tracking
/// ID.
#[derive(Debug)]
pub struct Shipping {
    /// The field the tracking ID is written to.
    tracking: &'static str,
    /// Where the shipment goes, in this version's format.
    destination: Destination,
}

/// How a version of Shipping takes the destination.
#[derive(Debug)]
enum Destination {
    /// `address`: an object with an optional ISO `country` code.
    Address,
    /// `destination`: one line of text, ending in `, CC` when the country is known.
    Line,
}

impl Destination {
    /// The destination's country code, `Some(None)` when it does not say; `None` when the
    /// shipment has no destination yet.
    fn country<'a>(&self, shipment: &'a Value) -> Option<Option<&'a str>> {
        match self {
            Destination::Address => Some(shipment.get("address")?["country"].as_str()),
            Destination::Line => {
                let line = shipment.get("destination")?.as_str()?;
                let last = line.rsplit(',').next().map(str::trim);
                Some(last.filter(|cc| cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())))
            }
        }
    }
}

/// The cost factor of shipping to `country` from the warehouse in the United States; an
/// unknown country ships at the international rate.
pub fn zone_factor(country: Option<&str>) -> f64 {
    match country {
        Some("US") => 1.0,
        Some("CA" | "MX") => 1.5,
        _ => 2.0,
    }
}

/// The quote for `count` items by `method` to `country`: a base and a price per item, times
/// the destination's zone factor, to the cent.
pub fn quote(method: &str, count: f64, country: Option<&str>) -> f64 {
    let (base, per_item) = if method == "air" { (15.0, 2.0) } else { (5.0, 1.0) };
    ((base + per_item * count) * zone_factor(country) * 100.0).round() / 100.0
}

impl Shipping {
    /// Version 1: `address` (an object) in, `trackingID` out.
    pub const V1: Shipping = Shipping { tracking: "trackingID", destination: Destination::Address };
    /// Version 2: `destination` (one line) in, `tracking` out.
    pub const V2: Shipping = Shipping { tracking: "tracking", destination: Destination::Line };
}

#[async_trait]
impl Reconciler for Shipping {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let Some(shipment) = &change.object else { return Ok(Action::Done) };
        let data = &shipment.data;
        let (Some(items), Some(method), Some(country)) =
            (data["items"].as_array(), data["method"].as_str(), self.destination.country(data))
        else {
            return Ok(Action::Done); // Not requested yet.
        };
        let count: f64 = items.iter().map(|i| i["qty"].as_f64().unwrap_or(1.0)).sum();
        let mut patch = json!({ "cost": quote(method, count, country) });
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
        // The change handed over may predate this knactor's own `sent` mark (the request
        // changed again meanwhile): the store says whether it was sent.
        let requests = ctx.store(&change.store)?;
        if requests.get(&change.name).await?.is_some_and(|r| r.data["sent"] == true) {
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
        requests.patch(&change.name, json!({ "sent": true })).await?;
        Ok(Action::Done)
    }
}

/// Converts amounts between currencies with its rate table (units per euro), to the cent.
#[derive(Debug)]
pub struct Currency;

/// `amount` in `from` as `to`, with `per_eur` rates; `None` for an unknown currency.
pub fn convert(amount: f64, from: Option<f64>, to: Option<f64>) -> Option<f64> {
    let euros = amount / from?;
    Some((euros * to? * 100.0).round() / 100.0)
}

#[async_trait]
impl Reconciler for Currency {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        if change.store != "conversions" {
            return Ok(Action::Done); // A rate changed: conversions already made stand.
        }
        let Some(conversion) = &change.object else { return Ok(Action::Done) };
        let data = &conversion.data;
        let (Some(amount), Some(from), Some(to)) =
            (data["amount"].as_f64(), data["from"].as_str(), data["to"].as_str())
        else {
            return Ok(Action::Done);
        };
        let rates = ctx.store("rates")?;
        let rate = async |code: &str| -> Result<Option<f64>, ReconcileError> {
            Ok(rates.get(code).await?.and_then(|r| r.data["perEur"].as_f64()))
        };
        let outcome = match convert(amount, rate(from).await?, rate(to).await?) {
            Some(result) => json!({ "result": result, "error": null }),
            None => json!({ "result": null, "error": format!("no rate for {from} or {to}") }),
        };
        ctx.store(&change.store)?.patch(&change.name, outcome).await?;
        Ok(Action::Done)
    }
}

/// Prices carts with its own copy of the catalog's prices — a line per priced item, and the
/// total — and re-prices the carts holding a
/// product whose price changed.
#[derive(Debug)]
pub struct Cart;

#[async_trait]
impl Reconciler for Cart {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        let carts = ctx.store("carts")?;
        let prices = ctx.store("prices")?;
        let price = async |sku: &str| -> Result<Option<f64>, ReconcileError> {
            Ok(prices.get(sku).await?.and_then(|p| p.data["priceUsd"].as_f64()))
        };
        let affected: Vec<std::sync::Arc<knactor::Object>> = match change.store.as_str() {
            "carts" => change.object.iter().cloned().collect(),
            _ => {
                let holds = |cart: &knactor::Object| {
                    let items = cart.data["items"].as_array().into_iter().flatten();
                    items.into_iter().any(|i| i["sku"] == change.name.as_str())
                };
                carts.list().await?.items.into_iter().filter(|c| holds(c)).collect()
            }
        };
        for cart in affected {
            let (mut lines, mut total, mut unknown) = (Vec::new(), 0.0, Vec::new());
            for item in cart.data["items"].as_array().into_iter().flatten() {
                let sku = item["sku"].as_str().unwrap_or_default();
                match price(sku).await? {
                    Some(price) => {
                        total += price * item["qty"].as_f64().unwrap_or(0.0);
                        lines.push(json!({ "sku": sku, "qty": item["qty"], "price": price }));
                    }
                    None => unknown.push(sku.to_owned()),
                }
            }
            let total = (total * 100.0).round() / 100.0;
            let priced = json!({ "lines": lines, "totalUsd": total, "unknown": unknown });
            carts.patch(&cart.name, priced).await?;
        }
        Ok(Action::Done)
    }
}

/// How many products a recommendation holds.
const RECOMMENDED: usize = 4;

/// Recommends products the shopper has not chosen yet, from its own copy of the catalog, in an
/// order that differs from shopper to shopper and stays the same for one.
#[derive(Debug)]
pub struct Recommendation;

#[async_trait]
impl Reconciler for Recommendation {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        if change.store != "requests" {
            return Ok(Action::Done);
        }
        let Some(request) = &change.object else { return Ok(Action::Done) };
        let exclude: Vec<&str> = request.data["exclude"]
            .as_array()
            .map(|skus| skus.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let known = ctx.store("products")?.list().await?.items;
        let mut candidates: Vec<&str> =
            known.iter().map(|p| p.name.as_str()).filter(|sku| !exclude.contains(sku)).collect();
        candidates.sort_by_key(|sku| fnv1a(&format!("{}/{sku}", change.name)));
        candidates.truncate(RECOMMENDED);
        ctx.store(&change.store)?.patch(&change.name, json!({ "products": candidates })).await?;
        Ok(Action::Done)
    }
}

/// A stable 64-bit hash (FNV-1a), for IDs derived from object names.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_grow_with_items_method_and_distance() {
        assert_eq!(quote("ground", 1.0, Some("US")), 6.0);
        assert_eq!(quote("air", 1.0, Some("US")), 17.0);
        assert_eq!(quote("ground", 3.0, Some("CA")), 12.0);
        assert_eq!(quote("ground", 1.0, Some("FR")), 12.0);
        assert_eq!(quote("ground", 1.0, None), 12.0);
    }

    #[test]
    fn a_destination_line_ends_in_its_country() {
        let boston = json!({ "destination": "1 Main St, Boston, US" });
        assert_eq!(Destination::Line.country(&boston), Some(Some("US")));
        let paris = json!({ "destination": "1 rue de Rivoli, Paris" });
        assert_eq!(Destination::Line.country(&paris), Some(None));
        assert_eq!(Destination::Line.country(&json!({})), None);
        let address = json!({ "address": { "city": "Toronto", "country": "CA" } });
        assert_eq!(Destination::Address.country(&address), Some(Some("CA")));
    }

    #[test]
    fn conversions_go_through_the_euro_to_the_cent() {
        assert_eq!(convert(100.0, Some(1.1305), Some(0.85970)), Some(76.05));
        assert_eq!(convert(10.0, Some(1.0), Some(126.40)), Some(1264.0));
        assert_eq!(convert(10.0, None, Some(1.0)), None);
    }
}
