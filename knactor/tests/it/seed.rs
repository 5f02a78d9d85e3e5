//! Seed objects shipped with an app: created when absent, never overwritten, and checked
//! against their store's schema when the manifest is loaded.

use std::path::Path;

use data_exchange::{StoreRef, Write};
use knactor::{App, AppConfig, AppOptions, Registry};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn catalog_app(dir: &Path, products: &str) {
    write(
        dir,
        "app.yaml",
        "apiVersion: knactor.dev/v1\nkind: App\nmetadata: {name: shop}\nspec:\n  dataDir: data\n  knactors: [catalog.yaml]\n",
    );
    write(
        dir,
        "catalog.yaml",
        "apiVersion: knactor.dev/v1\nkind: Knactor\nmetadata: {name: catalog}\nspec:\n  stores:\n    - name: products\n      seed: products.yaml\n      schema:\n        type: object\n        required: [price]\n        properties: {price: {type: number, minimum: 0}}\n",
    );
    write(dir, "products.yaml", products);
}

#[tokio::test]
async fn seeds_are_created_once_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    catalog_app(
        dir.path(),
        "- {name: lamp, data: {price: 60.25}}\n- {name: chair, data: {price: 120}}\n",
    );
    let products: StoreRef = "catalog/products".parse().unwrap();
    {
        let app = App::open(
            AppConfig::load(dir.path()).unwrap(),
            AppOptions::default(),
            &Registry::new(),
        )
        .await
        .unwrap();
        let listed = app.exchange().list(&products).await.unwrap();
        assert_eq!(listed.items.len(), 2);
        app.exchange().write(&products, Write::put("lamp", json!({"price": 55}))).await.unwrap();
    }
    let app =
        App::open(AppConfig::load(dir.path()).unwrap(), AppOptions::default(), &Registry::new())
            .await
            .unwrap();
    let lamp = app.exchange().get(&products, "lamp").await.unwrap().unwrap();
    assert_eq!(lamp.data, json!({"price": 55}), "a seed never overwrites");
}

#[test]
fn a_seed_that_breaks_the_schema_is_reported_at_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    catalog_app(dir.path(), "- {name: lamp, data: {price: -1}}\n");
    let problems = AppConfig::load(dir.path()).unwrap_err().to_string();
    assert!(problems.contains("catalog.yaml:7:13: error: "), "{problems}");
    assert!(problems.contains("object `lamp`"), "{problems}");
}
