//! CEL and JSONPath compile and evaluate, as an edge's `when` and `set` do: the first line of
//! the input is the expression, the rest the JSON document bound to `order`. Whatever the
//! expression, compiling is bounded (cel_bounds) and evaluating answers a value or an error.

#![no_main]

use integrators::cast::expr::{ValueExpr, base_context, json_to_cel};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|input: &str| {
    let (source, document) = input.split_once('\n').unwrap_or((input, "{}"));
    let Ok(expr) = ValueExpr::compile(source) else { return };
    let order: Value = serde_json::from_str(document).unwrap_or_else(|_| json!({}));
    let context = base_context();
    let mut scope = context.new_inner_scope();
    scope.add_variable_from_value("order", json_to_cel(&order));
    scope.add_variable_from_value("key", "o1");
    if let Ok(Some(value)) = expr.eval(&scope, &json!({ "order": order })) {
        let text = serde_json::to_string(&value).expect("a value prints as JSON");
        let _: Value = serde_json::from_str(&text).expect("and reads back");
    }
});
