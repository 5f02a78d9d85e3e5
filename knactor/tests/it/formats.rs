//! The JSON Schemas of the formats (`dxg-specs/schema/`) accept every spec and manifest the
//! repository ships, so the schemas cannot drift from what the code reads.

use std::path::{Path, PathBuf};

use data_exchange::StoreRef;
use data_exchange::schema::StoreSchema;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn files(pattern: &str) -> Vec<PathBuf> {
    let found: Vec<PathBuf> =
        glob::glob(&repo().join(pattern).to_string_lossy()).unwrap().map(Result::unwrap).collect();
    assert!(!found.is_empty(), "{pattern} matches nothing");
    found
}

/// Checks every file matching `pattern` against the schema of its `kind`
/// (`dxg-specs/schema/<kind>.schema.json`).
fn check(pattern: &str) {
    for path in files(pattern) {
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let kind = doc["kind"].as_str().unwrap_or_default().to_lowercase();
        let schema_path = format!("dxg-specs/schema/{kind}.schema.json");
        let schema: Value =
            serde_json::from_str(&std::fs::read_to_string(repo().join(&schema_path)).unwrap())
                .unwrap();
        let schema =
            StoreSchema::compile(&StoreRef::new("format", "spec").unwrap(), &schema).unwrap();
        if let Err(violation) = schema.validate(&doc) {
            panic!("{} does not follow {schema_path}: {violation}", path.display());
        }
    }
}

#[test]
fn shipped_specs_follow_the_published_schemas() {
    check("dxg-specs/*/*.yaml");
    check("integrators/tests/golden/*/cast.yaml");
    check("integrators/tests/sync-golden/*/sync.yaml");
    check("apps/*/knactors/*.yaml");
    check("apps/*/app.yaml");
    check("apps/*/policies.yaml");
}
