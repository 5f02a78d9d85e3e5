//! Ads: for each request, one of the seeded ads for the categories the shopper looks at, or any
//! ad when none matches.

use knactor::async_trait;
use knactor::serde_json::{Value, json};
use knactor::{Action, Change, Context, ReconcileError, Reconciler};

use super::fnv1a;

/// Picks an ad for each request, the same one for the same shopper and categories.
#[derive(Debug)]
pub struct Ad;

#[async_trait]
impl Reconciler for Ad {
    async fn reconcile(&self, ctx: &Context, change: &Change) -> Result<Action, ReconcileError> {
        if change.store != "requests" {
            return Ok(Action::Done);
        }
        let Some(request) = &change.object else { return Ok(Action::Done) };
        let categories = &request.data["categories"];
        let wanted =
            |ad: &Value| categories.as_array().is_some_and(|c| c.contains(&ad["category"]));
        let mut ads = ctx.store("ads")?.list().await?.items;
        ads.sort_by(|a, b| a.name.cmp(&b.name)); // The same pick whatever the listing order.
        let matching: Vec<_> = ads.iter().filter(|ad| wanted(&ad.data)).collect();
        let pool = if matching.is_empty() { ads.iter().collect() } else { matching };
        if pool.is_empty() {
            return Ok(Action::Done); // No ads at all.
        }
        let ad = pool[fnv1a(&format!("{}/{categories}", change.name)) as usize % pool.len()];
        let shown = json!({ "text": ad.data["text"], "redirect": ad.data["redirect"] });
        ctx.store(&change.store)?.patch(&change.name, json!({ "ad": shown })).await?;
        Ok(Action::Done)
    }
}
