//! Cast and Sync spec parsing and checking, YAML bytes in: every input is either a plan or
//! diagnostics that can be printed, against the example apps' schemas and without them.

#![no_main]

use std::path::Path;

use integrators::cast::CastPlan;
use integrators::source::SpecFile;
use integrators::sync::SyncPlan;
use knactor_fuzz::app_schemas;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let file = SpecFile::from_text(Path::new("fuzz.yaml"), text);
    let schemas = app_schemas();
    for objects in [None, Some(&schemas.objects)] {
        match CastPlan::load(&file, objects) {
            Ok((_, warnings)) => drop(warnings.to_string()),
            Err(problems) => drop(problems.to_string()),
        }
    }
    for logs in [None, Some(&schemas.logs)] {
        if let Err(problems) = SyncPlan::load(&file, logs) {
            drop(problems.to_string());
        }
    }
});
