//! `CastPlan::load` rejects mistakes with their file:line:column, and warns about gaps.

use std::collections::BTreeMap;
use std::path::Path;

use integrators::cast::{CastPlan, Schemas};
use integrators::source::SpecFile;
use serde_json::json;

fn schemas() -> Schemas {
    let mut schemas = BTreeMap::new();
    schemas.insert(
        "checkout/orders".parse().unwrap(),
        json!({"type": "object", "properties": {
            "status": {"type": "string"},
            "total": {"type": "number"},
            "note": {"type": "string", "x-knactor-ingest": true},
            "trackingID": {"type": "string", "x-knactor-ingest": true}
        }}),
    );
    schemas.insert(
        "shipping/shipments".parse().unwrap(),
        json!({"type": "object", "properties": {
            "method": {"type": "string", "x-knactor-ingest": true},
            "weight": {"type": "number", "x-knactor-ingest": true},
            "trackingID": {"type": "string"}
        }}),
    );
    schemas
}

/// Loads a spec whose edges are `edges` (YAML, indented as under `spec.edges`).
fn check(edges: &str) -> Result<String, String> {
    let text = format!(
        "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata:\n  name: t\nspec:\n  inputs:\n    order: checkout/orders\n    shipment: shipping/shipments\n  edges:\n{edges}"
    );
    let file = SpecFile::from_text(Path::new("cast.yaml"), text);
    match CastPlan::load(&file, Some(&schemas())) {
        Ok((plan, warnings)) => {
            let unfilled = plan.unfilled.iter().map(|u| format!("\n{}", u.warning));
            Ok(warnings.to_string() + &unfilled.collect::<String>())
        }
        Err(errors) => Err(errors.to_string()),
    }
}

fn rejects(edges: &str, want: &str) {
    let errors = check(edges).expect_err("the spec should be rejected");
    assert!(errors.contains(want), "got:\n{errors}\nwanted: {want}");
}

#[test]
fn a_sound_spec_passes_with_warnings_for_unfilled_ingest_fields() {
    let warnings = check(
        "    - name: ship\n      from: [order]\n      to: shipment\n      when: order.status == \"placed\"\n      set:\n        method: 'order.total > 100 ? \"air\" : \"ground\"'\n",
    )
    .unwrap();
    assert!(
        warnings
            .contains("warning: ingest field `weight` of shipping/shipments is filled by no edge"),
        "{warnings}"
    );
}

#[test]
fn cel_syntax_errors_are_located() {
    rejects(
        "    - name: ship\n      from: [order]\n      to: shipment\n      when: order.status ==\n      set: {method: '\"air\"'}\n",
        "cast.yaml:13:13: error: CEL syntax error in `order.status ==`",
    );
}

#[test]
fn unknown_aliases_are_located() {
    rejects(
        "    - name: ship\n      from: [ordr]\n      to: shipment\n      set: {method: '\"air\"'}\n",
        "cast.yaml:11:14: error: unknown alias `ordr`",
    );
    rejects(
        "    - name: ship\n      from: [order]\n      to: shipment\n      set: {method: 'shipment.method + cart.x'}\n",
        "unknown alias `cart`",
    );
}

#[test]
fn writes_to_fields_not_marked_ingest_are_rejected() {
    rejects(
        "    - name: ship\n      from: [order]\n      to: shipment\n      set:\n        trackingID: order.status\n",
        "cast.yaml:14:21: error: `trackingID` of shipping/shipments is not marked `x-knactor-ingest: true`",
    );
}

#[test]
fn reads_of_undeclared_fields_and_type_mismatches_are_rejected() {
    rejects(
        "    - name: ship\n      from: [order]\n      to: shipment\n      set:\n        method: order.stauts\n",
        "`order.stauts`: the schema of checkout/orders declares no field `stauts`",
    );
    rejects(
        "    - name: ship\n      from: [order]\n      to: shipment\n      set:\n        weight: order.status\n",
        "type mismatch: `weight` of shipping/shipments is number, but the value is string",
    );
}

#[test]
fn field_level_cycles_are_rejected() {
    rejects(
        "    - name: there\n      from: [order]\n      to: shipment\n      set: {method: order.note}\n    - name: back\n      from: [shipment]\n      to: order\n      set: {note: shipment.method}\n",
        "field-level cycle: checkout/orders.note → shipping/shipments.method → checkout/orders.note",
    );
}
