//! Evaluating one edge for one change: bindings in, the target's write out. Pure — no
//! exchange, no I/O — so an edge is tested on its own; the integrator reads the bindings and
//! makes the write.

use std::fmt;

use serde_json::{Map, Value};

use super::expr::{ExprError, ValueExpr, base_context, json_to_cel};
use super::plan::EdgePlan;
use super::spec::OnDelete;

/// The objects an edge sees: each alias bound to its object's data (a `collect` input to the
/// list of its store's data).
pub type Bindings = Vec<(String, Value)>;

/// What one change of a source object makes an edge do to its target.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetWrite {
    /// Merge `patch` into the target object `name`, created if absent.
    Merge {
        /// The target object.
        name: String,
        /// The fields the edge sets (an RFC 7386 merge patch).
        patch: Value,
    },
    /// Delete the target object `name` (the source was deleted, `onDelete: cascade`).
    Delete {
        /// The target object.
        name: String,
    },
}

/// Evaluates edges: the CEL environment with the aggregation functions, built once.
pub struct Evaluator {
    cel: cel::Context<'static, 'static>,
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator { cel: base_context() }
    }
}

impl Evaluator {
    /// What `edge` writes when the object named `key` changed (`deleted`: it was deleted),
    /// with every alias the edge reads in `bindings`. `None`: nothing to write (`when` does not
    /// hold, or a deletion the edge ignores).
    pub fn evaluate(
        &self,
        edge: &EdgePlan,
        key: &str,
        bindings: Bindings,
        deleted: bool,
    ) -> Result<Option<TargetWrite>, ExprError> {
        if deleted && edge.spec.on_delete == OnDelete::Ignore {
            return Ok(None);
        }
        let mut scope = self.cel.new_inner_scope();
        for (name, data) in &bindings {
            scope.add_variable_from_value(name.as_str(), json_to_cel(data));
        }
        scope.add_variable_from_value("key", key);
        let name = match &edge.key {
            Some(expr) => match expr.eval(&scope)? {
                Value::String(name) => name,
                got => return Err(ExprError::Type { role: "key", want: "string", got }),
            },
            None => key.to_owned(),
        };
        if deleted {
            return Ok(Some(TargetWrite::Delete { name }));
        }
        if let Some(when) = &edge.when {
            match when.eval(&scope)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(None),
                got => return Err(ExprError::Type { role: "when", want: "boolean", got }),
            }
        }
        let reads_paths = edge.set.iter().any(|(_, v)| matches!(v, ValueExpr::Path(_)));
        let document =
            if reads_paths { Value::Object(bindings.into_iter().collect()) } else { Value::Null };
        let mut patch = Value::Object(Map::new());
        for (path, value) in &edge.set {
            if let Some(value) = value.eval(&scope, &document)? {
                set_path(&mut patch, path, value);
            }
        }
        Ok(Some(TargetWrite::Merge { name, patch }))
    }
}

/// Sets `value` at the dotted `path` of `doc`, creating objects on the way.
fn set_path(doc: &mut Value, path: &[String], value: Value) {
    let mut node = doc;
    for part in &path[..path.len() - 1] {
        let map = node.as_object_mut().expect("patches are objects");
        node = map.entry(part.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
    }
    node.as_object_mut().expect("patches are objects").insert(path[path.len() - 1].clone(), value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cast::plan::test_plan;

    fn bind(pairs: &[(&str, Value)]) -> Bindings {
        pairs.iter().map(|(alias, data)| ((*alias).to_owned(), data.clone())).collect()
    }

    #[test]
    fn an_edge_gives_the_fields_it_sets_when_its_condition_holds() {
        let plan = test_plan(
            r#"    - name: ship
      from: [order]
      to: shipment
      when: order.status == "placed"
      set:
        method: 'order.total > 100 ? "air" : "ground"'
        first: $.order.items[0].sku
        skus: $.order.items[*].sku
        address.city: order.city
        missing: $.order.nothing
"#,
        );
        let edge = &plan.edges[0];
        let evaluator = Evaluator::default();
        let order = json!({"status": "placed", "total": 120.5, "city": "Paris",
            "items": [{"sku": "lamp"}, {"sku": "desk"}]});
        let write = evaluator.evaluate(edge, "o1", bind(&[("order", order.clone())]), false);
        let patch = json!({"method": "air", "first": "lamp", "skus": ["lamp", "desk"],
            "address": {"city": "Paris"}});
        assert_eq!(write.unwrap(), Some(TargetWrite::Merge { name: "o1".into(), patch }));

        let mut draft = order;
        draft["status"] = json!("draft");
        assert_eq!(evaluator.evaluate(edge, "o1", bind(&[("order", draft)]), false).unwrap(), None);
    }

    #[test]
    fn keys_deletions_and_bad_results_follow_the_spec() {
        let plan = test_plan(
            r#"    - {name: keyed, from: [order], to: shipment, key: '"s-" + key', onDelete: cascade, set: {n: count(all)}}
    - {name: ignored, from: [order], to: shipment, set: {total: order.total}}
    - {name: bad-when, from: [order], to: shipment, when: order.total, set: {total: order.total}}
"#,
        );
        let evaluator = Evaluator::default();
        let (keyed, ignored, bad_when) = (&plan.edges[0], &plan.edges[1], &plan.edges[2]);
        let bindings = bind(&[("order", json!({"total": 3})), ("all", json!([{}, {}]))]);
        let merged = evaluator.evaluate(keyed, "o1", bindings.clone(), false).unwrap();
        let patch = json!({"n": 2});
        assert_eq!(merged, Some(TargetWrite::Merge { name: "s-o1".into(), patch }));
        let deleted = evaluator.evaluate(keyed, "o1", bindings.clone(), true).unwrap();
        assert_eq!(deleted, Some(TargetWrite::Delete { name: "s-o1".into() }));
        assert_eq!(evaluator.evaluate(ignored, "o1", bindings.clone(), true).unwrap(), None);
        let error = evaluator.evaluate(bad_when, "o1", bindings, false).unwrap_err();
        assert!(matches!(error, ExprError::Type { role: "when", .. }), "{error}");
    }
}
