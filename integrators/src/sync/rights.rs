//! The rights a Sync spec runs with (DESIGN §11): it reads the Log stores its flows read, and
//! reads and appends to those they append to (where their checkpoints are kept too); nothing
//! else, and no SQL over every store.

use data_exchange::access::{Fields, Grant, Rights};

use super::plan::SyncPlan;
use crate::cast::{principal, shadow_principal};

impl SyncPlan {
    /// The rights its integrator acts with: exactly what its flows need, and what is declared
    /// for it.
    pub fn rights(&self) -> Rights {
        let mut rights = Rights::new(principal(&self.name));
        for flow in &self.flows {
            for source in &flow.sources {
                rights.grant(source.clone(), Grant::read());
            }
            let appends = Grant { write: Some(Fields::All), ..Grant::read() };
            rights.grant(flow.to.clone(), appends);
        }
        rights.extend(&self.declared);
        rights
    }

    /// The rights of its shadow run (see [`super::SyncIntegrator::start_shadow`]): it reads
    /// the stores its flows read, and where they append the live flows' checkpoints; it
    /// appends nothing, its destinations being copies of its own.
    pub fn shadow_rights(&self) -> Rights {
        let mut rights = Rights::new(shadow_principal(&self.name));
        for flow in &self.flows {
            for store in flow.sources.iter().chain([&flow.to]) {
                rights.grant(store.clone(), Grant::read());
            }
        }
        rights
    }
}
