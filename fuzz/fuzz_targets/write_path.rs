//! The write path of the embedded exchange: puts, creates, merge patches and deletes of
//! objects under a schema. After each write, the store holds exactly what a reference model
//! says (RFC 7386 for patches), every object stored conforms, a refused write changed nothing,
//! and a write that keeps its object valid is not refused.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use data_exchange::schema::StoreSchema;
use data_exchange::{EmbeddedExchange, ObjectExchange, StoreRef, Write};
use knactor_fuzz::{Doc, FIELDS, merge_patch, object_schema, runtime};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const NAMES: &[&str] = &["a", "b", "order-1"];

#[derive(Debug, Arbitrary)]
enum Op {
    Create(u8, Doc),
    Put(u8, Doc),
    Patch(u8, Doc),
    Delete(u8),
}

fuzz_target!(|ops: Vec<Op>| {
    let store: StoreRef = "fuzz/orders".parse().unwrap();
    let schema = object_schema(true);
    let check = StoreSchema::compile(&store, &schema).unwrap();
    let valid = |data: &Value| check.validate(data).is_ok();
    runtime().block_on(async {
        let exchange = EmbeddedExchange::in_memory();
        exchange.register(&store, &schema).await.unwrap();
        let mut model: BTreeMap<&str, Value> = BTreeMap::new();
        for op in ops.iter().take(32) {
            let (name, write, wanted) = match op {
                Op::Create(i, doc) => {
                    let (name, data) = (pick(*i), doc.to_json(FIELDS));
                    let wanted = (!model.contains_key(name)).then(|| Some(data.clone()));
                    (name, Write::create(name, data), wanted)
                }
                Op::Put(i, doc) => {
                    let (name, data) = (pick(*i), doc.to_json(FIELDS));
                    (name, Write::put(name, data.clone()), Some(Some(data)))
                }
                Op::Patch(i, doc) => {
                    let (name, patch) = (pick(*i), doc.to_json(FIELDS));
                    let wanted = model.get(name).map(|old| Some(merge_patch(old, &patch)));
                    (name, Write::patch(name, patch), wanted)
                }
                Op::Delete(i) => {
                    let name = pick(*i);
                    (name, Write::delete(name), model.contains_key(name).then_some(None))
                }
            };
            // `wanted`: None when the write's precondition fails; else the object after it.
            let before = model.get(name).cloned();
            let result = exchange.write(&store, write).await;
            let stored = exchange.get(&store, name).await.unwrap().map(|o| o.data.clone());
            match result {
                Ok(_) => {
                    let wanted = wanted.expect("a write whose precondition fails is refused");
                    assert_eq!(stored, wanted, "{op:?}");
                    assert!(stored.as_ref().is_none_or(valid), "a stored object conforms");
                    match stored {
                        Some(data) => model.insert(name, data),
                        None => model.remove(name),
                    };
                }
                Err(error) => {
                    assert_eq!(stored, before, "a refused write changes nothing ({error})");
                    match &wanted {
                        Some(Some(data)) => {
                            assert!(
                                !valid(data),
                                "a write keeping {name} valid was refused: {error}"
                            )
                        }
                        Some(None) => {
                            panic!("the delete of {name}, which exists, was refused: {error}")
                        }
                        None => {}
                    }
                }
            }
        }
    });
});

fn pick(i: u8) -> &'static str {
    NAMES[usize::from(i) % NAMES.len()]
}
