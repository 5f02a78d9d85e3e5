//! The load generator: simulated shoppers. Each object of `users` is one shopper, who browses
//! products, adds them to the cart, checks the cart's total, and checks out, one step each
//! time the page they see (`page`, which the composition brings back from the frontend) shows
//! their last step done. About one shopper in ten pays with a card that must be declined.

use knactor::async_trait;
use knactor::serde_json::{Value, json};
use knactor::{Action, Change, Context, ReconcileError, Reconciler};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

use super::fnv1a;

/// The share of shoppers who pay with a card that must be declined.
const BAD_CARDS: f64 = 0.1;
/// The currencies shoppers pick (as the Online Boutique load generator does).
const CURRENCIES: [&str; 5] = ["EUR", "USD", "JPY", "CAD", "GBP"];
/// Where shoppers live: street, city, country.
const ADDRESSES: [(&str, &str, &str); 5] = [
    ("1600 Amphitheatre Parkway", "Mountain View", "US"),
    ("100 Queen St W", "Toronto", "CA"),
    ("1 rue de Rivoli", "Paris", "FR"),
    ("Unter den Linden 1", "Berlin", "DE"),
    ("Paseo de la Reforma 50", "Mexico City", "MX"),
];

/// Drives each shopper of `users` one step at a time.
#[derive(Debug)]
pub struct LoadGenerator;

#[async_trait]
impl Reconciler for LoadGenerator {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        if change.store != "users" {
            return Ok(Action::Done);
        }
        let Some(user) = &change.object else { return Ok(Action::Done) };
        let data = &user.data;
        if data.get("outcome").is_some() {
            return Ok(Action::Done);
        }
        let patch = match data.get("plan") {
            None => {
                let products = ctx.store("products")?.list().await?.items;
                if products.is_empty() {
                    // The catalog has not reached this service yet.
                    return Ok(Action::RequeueAfter(Duration::from_millis(100)));
                }
                let mut skus: Vec<&str> = products.iter().map(|p| p.name.as_str()).collect();
                skus.sort_unstable(); // The same plan whatever order the exchange lists in.
                let seed = data["seed"].as_u64().unwrap_or_default() ^ fnv1a(&change.name);
                let plan = plan(&mut StdRng::seed_from_u64(seed), &skus);
                let first = plan["items"][0]["sku"].clone();
                let session =
                    json!({ "currency": plan["currency"], "viewing": first, "items": [] });
                json!({ "plan": plan, "session": session })
            }
            Some(plan) => match next_step(plan, &data["session"], &data["page"]) {
                Some(patch) => patch,
                None => return Ok(Action::Done), // The page does not show the last step yet.
            },
        };
        ctx.store(&change.store)?.patch(&change.name, patch).await?;
        Ok(Action::Done)
    }
}

/// A shopper's plan: a currency, one to three products with quantities, where to ship, and a
/// card — valid, or broken in one of the ways payment must catch — with the outcome it must
/// get.
fn plan(rng: &mut StdRng, skus: &[&str]) -> Value {
    let items: Vec<Value> = (0..rng.random_range(1..=3))
        .map(|_| json!({ "sku": skus[rng.random_range(0..skus.len())], "qty": rng.random_range(1..=2) }))
        .collect();
    let (street, city, country) = ADDRESSES[rng.random_range(0..ADDRESSES.len())];
    let (card, expect) = card(rng);
    json!({
        "currency": CURRENCIES[rng.random_range(0..CURRENCIES.len())],
        "items": items,
        "checkout": {
            "email": format!("shopper{}@example.com", rng.random_range(0..1000)),
            "address": { "street": street, "city": city, "country": country },
            "card": card,
        },
        "expect": expect,
    })
}

/// A card and the outcome of paying with it.
fn card(rng: &mut StdRng) -> (Value, &'static str) {
    if !rng.random_bool(BAD_CARDS) {
        return (json!({ "number": "4242 4242 4242 4242", "expiry": "12/39" }), "completed");
    }
    let bad = match rng.random_range(0..3) {
        0 => json!({ "number": "4242 4242 4242 4241", "expiry": "12/39" }), // Bad checksum.
        1 => json!({ "number": "4242 4242 4242 4242", "expiry": "01/20" }), // Expired.
        _ => json!({ "number": "not a card", "expiry": "12/39" }),
    };
    (bad, "declined")
}

/// The shopper's next step once `page` shows the last one done: add the viewed product to the
/// cart and view the next one; check out once the cart and its total show; note the outcome
/// once the order ends. `None` while the page lags behind.
fn next_step(plan: &Value, session: &Value, page: &Value) -> Option<Value> {
    let planned = plan["items"].as_array()?;
    let added = session["items"].as_array()?.len();
    if page["viewing"] != session["viewing"] || page["cartItems"] != json!(added) {
        return None;
    }
    if session.get("checkout").is_some() {
        let status = page["order"]["status"].as_str()?;
        return ["completed", "declined"].contains(&status).then(|| json!({ "outcome": status }));
    }
    if added < planned.len() {
        let viewing = planned.get(added + 1).unwrap_or(&planned[added])["sku"].clone();
        let items = &planned[..=added];
        return Some(json!({ "session": { "items": items, "viewing": viewing } }));
    }
    page.get("cartTotal")?;
    Some(json!({ "session": { "checkout": plan["checkout"] } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shopper_steps_only_when_the_page_shows_the_last_step() {
        let plan = json!({
            "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
            "checkout": {"email": "e"},
        });
        let session = json!({"viewing": "A", "items": []});
        assert_eq!(next_step(&plan, &session, &json!({"viewing": "B"})), None);
        let page = json!({"viewing": "A", "cartItems": 0});
        let step = json!({"session": {"items": [{"sku": "A", "qty": 1}], "viewing": "B"}});
        assert_eq!(next_step(&plan, &session, &page), Some(step));

        let session = json!({"viewing": "B", "items": plan["items"]});
        let page = json!({"viewing": "B", "cartItems": 2});
        assert_eq!(next_step(&plan, &session, &page), None, "no total shown yet");
        let page = json!({"viewing": "B", "cartItems": 2, "cartTotal": "9.00 EUR"});
        let checkout = json!({"session": {"checkout": {"email": "e"}}});
        assert_eq!(next_step(&plan, &session, &page), Some(checkout));

        let mut session = session;
        session["checkout"] = json!({"email": "e"});
        let mut page = page;
        page["order"] = json!({"status": "placed"});
        assert_eq!(next_step(&plan, &session, &page), None);
        page["order"] = json!({"status": "declined"});
        assert_eq!(next_step(&plan, &session, &page), Some(json!({"outcome": "declined"})));
    }
}
