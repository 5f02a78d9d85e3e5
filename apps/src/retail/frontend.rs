//! The frontend: shows each shopper the page for what they did — the product they view, their
//! cart in their currency, recommendations, an ad and their order — from its own copy of the
//! catalog and the answers the composition brings into the session.

use knactor::async_trait;
use knactor::serde_json::{Map, Value, json};
use knactor::{Action, Change, Context, ReconcileError, Reconciler};

/// Renders each session's `page` (and the `product` viewed) from the session alone.
#[derive(Debug)]
pub struct Frontend;

#[async_trait]
impl Reconciler for Frontend {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        if change.store != "sessions" {
            return Ok(Action::Done); // The catalog changed: pages show it on the next view.
        }
        let Some(session) = &change.object else { return Ok(Action::Done) };
        let data = &session.data;
        let product = match data["viewing"].as_str() {
            Some(sku) => ctx.store("products")?.get(sku).await?.map(|p| {
                json!({
                    "sku": sku,
                    "name": p.data["name"],
                    "priceUsd": p.data["priceUsd"],
                    "categories": p.data["categories"],
                })
            }),
            None => None,
        };
        let page = render(data, product.as_ref());
        let patch = json!({ "product": product, "page": page });
        ctx.store(&change.store)?.patch(&change.name, patch).await?;
        Ok(Action::Done)
    }
}

/// The page a session shows. The cart appears once the cart's priced lines match the items
/// chosen, and its total once converted for that cart.
fn render(session: &Value, product: Option<&Value>) -> Value {
    let mut page = Map::new();
    if let Some(product) = product {
        page.insert("viewing".into(), product["sku"].clone());
        page.insert("name".into(), product["name"].clone());
        page.insert("priceUsd".into(), product["priceUsd"].clone());
    }
    let lines = session["lines"].as_array();
    if let Some(lines) = lines.filter(|lines| cart_is_current(lines, &session["items"])) {
        page.insert("cartItems".into(), json!(lines.len()));
        let converted = session["totalOf"] == session["totalUsd"];
        if let (Some(total), Some(currency), true) =
            (session["total"].as_f64(), session["currency"].as_str(), converted)
        {
            page.insert("cartTotal".into(), json!(format!("{total:.2} {currency}")));
        }
    }
    if let Some(recommended) = session.get("recommended") {
        page.insert("recommended".into(), recommended.clone());
    }
    if let Some(text) = session["ad"]["text"].as_str() {
        page.insert("ad".into(), json!(text));
    }
    if let Some(order) = session.get("order") {
        page.insert("order".into(), order.clone());
    }
    Value::Object(page)
}

/// Whether the cart's priced `lines` are for exactly the `items` chosen (SKUs and quantities).
fn cart_is_current(lines: &[Value], items: &Value) -> bool {
    let items = items.as_array().map(Vec::as_slice).unwrap_or_default();
    lines.len() == items.len()
        && lines.iter().zip(items).all(|(l, i)| l["sku"] == i["sku"] && l["qty"] == i["qty"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_shows_the_cart_only_once_it_is_current() {
        let mut session = json!({
            "currency": "EUR",
            "items": [{"sku": "A", "qty": 2}],
            "lines": [{"sku": "A", "qty": 1, "price": 10.0}],
            "totalUsd": 10.0, "total": 8.85, "totalOf": 10.0,
        });
        assert_eq!(render(&session, None), json!({}), "the lines are for one A, not two");
        session["lines"] = json!([{"sku": "A", "qty": 2, "price": 10.0}]);
        session["totalUsd"] = json!(20.0);
        assert_eq!(render(&session, None), json!({"cartItems": 1}), "the total is for 10");
        session["total"] = json!(17.69);
        session["totalOf"] = json!(20.0);
        assert_eq!(render(&session, None), json!({"cartItems": 1, "cartTotal": "17.69 EUR"}));
    }
}
