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

fn check(schema: &str, pattern: &str) {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(schema)).unwrap()).unwrap();
    let schema = StoreSchema::compile(&StoreRef::new("format", "spec").unwrap(), &schema).unwrap();
    for path in files(pattern) {
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Err(violation) = schema.validate(&doc) {
            panic!("{} does not follow {schema:?}: {violation}", path.display());
        }
    }
}

#[test]
fn shipped_specs_follow_the_published_schemas() {
    check("dxg-specs/schema/cast.schema.json", "dxg-specs/*/*.yaml");
    check("dxg-specs/schema/cast.schema.json", "integrators/tests/golden/*/cast.yaml");
    check("dxg-specs/schema/knactor.schema.json", "apps/*/knactors/*.yaml");
    check("dxg-specs/schema/app.schema.json", "apps/*/app.yaml");
}
