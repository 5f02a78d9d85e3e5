//! Store names: `<knactor>/<store>`.

use std::fmt;
use std::str::FromStr;

/// A store ref that is not `<knactor>/<store>` made of valid names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid store {}: expected <knactor>/<store> made of letters, digits, '-', '_', '.'",
    quoted_name(.0)
)]
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

/// The longest name of a knactor, store or object.
pub const MAX_NAME_LEN: usize = 253;

/// Names of knactors, stores and objects: letters, digits, `-`, `_` and `.`, not empty, at
/// most [`MAX_NAME_LEN`] long, and neither `.` nor `..` (which paths cannot reach).
pub fn is_valid_name(name: &str) -> bool {
    name_problem(name).is_none()
}

/// What is wrong with `name`, if anything, in words.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("a name cannot be empty".into())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("{} bytes long, at most {MAX_NAME_LEN}", name.len()))
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names".into())
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        Some("use letters, digits, '-', '_', '.'".into())
    } else {
        None
    }
}

/// `name` to quote in a message: its first 40 characters when it is longer.
pub fn quoted_name(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((end, _)) => format!("`{}…`", &name[..end]),
        None => format!("`{name}`"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_name_is_told_what_is_wrong_without_being_echoed_whole() {
        assert_eq!(name_problem("order-1.a_b"), None);
        assert_eq!(name_problem(&"a".repeat(MAX_NAME_LEN)), None);
        assert_eq!(name_problem("..").unwrap(), "`.` and `..` are not names");
        assert_eq!(name_problem(&"a".repeat(10_000)).unwrap(), "10000 bytes long, at most 253");
        assert!(name_problem("a/b").unwrap().contains("letters, digits"));
        let error = InvalidStoreRef(format!("a/{}", "b".repeat(10_000))).to_string();
        assert!(error.starts_with("invalid store `a/bbb"), "{error}");
        assert!(error.len() < 200, "{error}");
    }
}
