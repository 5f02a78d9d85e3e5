//! A store's migration (`migrate:` of a store in a Knactor manifest): how its objects take the
//! shape of a new schema when the manifest is applied to a running app. Each field named is
//! set by a CEL expression, or a JSONPath when it starts with `$`, over `old`, the object as
//! stored; the results merge-patch the object, so a field set to `null` is removed, one a
//! JSONPath finds nothing for is left as it is, and one not named is kept.

use std::collections::BTreeMap;

use data_exchange::{ExchangeError, ObjectExchange, StoreRef};
use integrators::cast::expr::{ExprError, ValueExpr, base_context};
use serde_json::{Map, Value};

use crate::manifest::StoreSpec;

/// What the expressions of a migration read the stored object as.
pub const OLD: &str = "old";

/// A compiled migration.
#[derive(Debug)]
pub struct Migration {
    set: Vec<(String, ValueExpr)>,
}

impl Migration {
    /// Compiles the expressions of `fields` (field -> expression); else the field whose
    /// expression is wrong, and why.
    pub fn compile(fields: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut set = Vec::new();
        for (field, source) in fields {
            let expr = ValueExpr::compile(source).map_err(|e| (field.clone(), e.to_string()))?;
            if let Some(other) = expr.identifiers().into_iter().find(|name| name != OLD) {
                let message = format!("reads `{other}`: a migration reads only `{OLD}`");
                return Err((field.clone(), message));
            }
            set.push((field.clone(), expr));
        }
        Ok(Migration { set })
    }

    /// The object `old` in its new shape.
    pub fn migrate(&self, old: &Value) -> Result<Value, String> {
        let context = base_context();
        let mut scope = context.new_inner_scope();
        scope.add_variable_from_value(OLD, integrators::cast::expr::json_to_cel(old));
        let document = Value::Object(Map::from_iter([(OLD.to_owned(), old.clone())]));
        let mut patch = Map::new();
        for (field, expr) in &self.set {
            let value = expr.eval(&scope, &document).map_err(|e: ExprError| e.to_string())?;
            if let Some(value) = value {
                patch.insert(field.clone(), value);
            }
        }
        let mut new = old.clone();
        json_patch::merge(&mut new, &Value::Object(patch));
        Ok(new)
    }
}

/// Makes `exchange` hold the schema of `spec` for `store`, its objects migrated as `spec`
/// says (see [`ObjectExchange::evolve`]): the schema's version.
pub async fn evolve(
    exchange: &dyn ObjectExchange,
    store: &StoreRef,
    spec: &StoreSpec,
) -> Result<u64, ExchangeError> {
    let migration = spec.migration().map(std::sync::Arc::new);
    let migrate = migration.map(|m| move |_: &str, old: &Value| m.migrate(old));
    let migrate = migrate.as_ref().map(|m| m as &data_exchange::Migration);
    exchange.evolve(store, &spec.schema, migrate).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn migration(fields: &[(&str, &str)]) -> Result<Migration, (String, String)> {
        Migration::compile(&fields.iter().map(|(f, e)| (f.to_string(), e.to_string())).collect())
    }

    #[test]
    fn fields_are_set_removed_by_null_and_kept_when_not_named() {
        let shipping_v2 = migration(&[
            ("destination", r#"old.address.street + ", " + old.address.city"#),
            ("tracking", "$.old.trackingID"),
            ("address", "null"),
            ("trackingID", "null"),
        ])
        .unwrap();
        let booked = json!({"address": {"street": "1 Main St", "city": "Oslo"},
            "trackingID": "T1", "method": "air"});
        assert_eq!(
            shipping_v2.migrate(&booked).unwrap(),
            json!({"destination": "1 Main St, Oslo", "tracking": "T1", "method": "air"})
        );
        let unbooked = json!({"address": {"street": "2 High St", "city": "Lima"}});
        assert_eq!(
            shipping_v2.migrate(&unbooked).unwrap(),
            json!({"destination": "2 High St, Lima"}),
            "a JSONPath that finds nothing sets nothing"
        );
        let error = shipping_v2.migrate(&json!({})).unwrap_err();
        assert!(error.contains("address"), "{error}");
    }

    #[test]
    fn a_migration_reads_only_the_old_object() {
        let (field, message) = migration(&[("x", "order.total")]).unwrap_err();
        assert_eq!(field, "x");
        assert!(message.contains("`order`"), "{message}");
        assert!(migration(&[("x", "old.")]).is_err(), "syntax errors are caught");
    }
}
