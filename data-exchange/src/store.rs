//! Store names: `<knactor>/<store>`.

use std::fmt;
use std::str::FromStr;

/// A store ref that is not `<knactor>/<store>` made of valid names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid store `{0}`: expected <knactor>/<store> made of letters, digits, '-', '_', '.'")]
pub struct InvalidStoreRef(pub String);

/// Names a store: `<knactor>/<store>`, e.g. `checkout/orders`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreRef {
    knactor: String,
    store: String,
}

impl StoreRef {
    /// Builds a store ref from its two parts, checking that each is a valid name.
    pub fn new(knactor: &str, store: &str) -> Result<Self, InvalidStoreRef> {
        for part in [knactor, store] {
            if !is_valid_name(part) {
                return Err(InvalidStoreRef(format!("{knactor}/{store}")));
            }
        }
        Ok(StoreRef { knactor: knactor.to_owned(), store: store.to_owned() })
    }

    /// The knactor that owns the store.
    pub fn knactor(&self) -> &str {
        &self.knactor
    }

    /// The store's name within its knactor.
    pub fn store(&self) -> &str {
        &self.store
    }
}

/// Names of knactors, stores and objects: letters, digits, `-`, `_` and `.`, not empty.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl fmt::Display for StoreRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.knactor, self.store)
    }
}

impl FromStr for StoreRef {
    type Err = InvalidStoreRef;

    fn from_str(s: &str) -> Result<Self, InvalidStoreRef> {
        match s.split_once('/') {
            Some((knactor, store)) => StoreRef::new(knactor, store),
            None => Err(InvalidStoreRef(s.to_owned())),
        }
    }
}
