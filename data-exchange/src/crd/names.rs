//! The Kubernetes names of a store's custom resource, and the name rules Kubernetes enforces.

use std::fmt;

use crate::store::StoreRef;

use super::CrdError;

/// The suffix of every knactor's API group: `checkout` → `checkout.knactor.dev`.
const GROUP_SUFFIX: &str = "knactor.dev";
/// The runtime's own knactor (its store `_knactor/checkpoints`): its group is the suffix
/// itself, which no knactor's group can be.
const RUNTIME_KNACTOR: &str = "_knactor";

/// The longest DNS label (RFC 1123 and RFC 1035).
const MAX_LABEL: usize = 63;

/// The longest DNS subdomain (RFC 1123).
const MAX_SUBDOMAIN: usize = 253;

/// What Kubernetes accepts as a knactor name (the first label of its API group).
const DNS_1123_LABEL: &str = "a DNS-1123 label: lowercase letters, digits and '-', starting and \
    ending with a letter or digit, at most 63 characters";

/// What Kubernetes accepts as a store name (the resource's plural).
const DNS_1035_LABEL: &str = "a DNS-1035 label: lowercase letters, digits and '-', starting \
    with a letter and ending with a letter or digit, at most 63 characters";

/// Which of a store ref's two names a [`CrdError::InvalidName`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRole {
    /// The knactor's name: the first label of the API group.
    Knactor,
    /// The store's name: the resource's plural.
    Store,
}

impl fmt::Display for NameRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameRole::Knactor => "knactor",
            NameRole::Store => "store",
        })
    }
}

/// The Kubernetes names of a store's custom resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdNames {
    /// The API group: `<knactor>.knactor.dev`.
    pub group: String,
    /// The one version Knactor serves: `v1`.
    pub version: &'static str,
    /// The store name in UpperCamelCase: `smart-plugs` → `SmartPlugs`.
    pub kind: String,
    /// The store name: `smart-plugs`.
    pub plural: String,
    /// The kind lowercased: `smartplugs`.
    pub singular: String,
}

impl CrdNames {
    /// The names of `store`'s resource; an error when its knactor is not a DNS-1123 label or
    /// its name not a DNS-1035 label, as Kubernetes requires.
    pub fn of(store: &StoreRef) -> Result<CrdNames, CrdError> {
        let invalid = |role, name: &str, problem, accepts| CrdError::InvalidName {
            role,
            name: name.to_owned(),
            problem,
            accepts,
        };
        let (knactor, plural) = (store.knactor(), store.store());
        let runtime = knactor == RUNTIME_KNACTOR;
        if let Some(problem) = label_problem(knactor, false).filter(|_| !runtime) {
            return Err(invalid(NameRole::Knactor, knactor, problem, DNS_1123_LABEL));
        }
        if let Some(problem) = label_problem(plural, true) {
            return Err(invalid(NameRole::Store, plural, problem, DNS_1035_LABEL));
        }
        // The `knactor.dev/store` label holds `<knactor>.<store>`; label values are short.
        let label = store_label(store);
        if label.len() > MAX_LABEL {
            let problem = format!("makes the label value `{label}`, {} characters", label.len());
            let accepts = "at most 63 characters for knactor and store names together";
            return Err(invalid(NameRole::Store, plural, problem, accepts));
        }
        let kind = upper_camel_case(plural);
        Ok(CrdNames {
            group: if runtime {
                GROUP_SUFFIX.to_owned()
            } else {
                format!("{knactor}.{GROUP_SUFFIX}")
            },
            version: "v1",
            singular: kind.to_lowercase(),
            kind,
            plural: plural.to_owned(),
        })
    }

    /// The `apiVersion` of the store's objects: `checkout.knactor.dev/v1`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }

    /// The name of the CustomResourceDefinition: `<plural>.<group>`.
    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
}

/// The value of the `knactor.dev/store` label of a store's CRD: `<knactor>.<store>`.
pub(super) fn store_label(store: &StoreRef) -> String {
    format!("{}.{}", store.knactor().trim_start_matches('_'), store.store())
}

/// Whether `name` can name a Kubernetes object: a DNS-1123 subdomain (lowercase letters,
/// digits, '-' and '.', each dot-separated part starting and ending with a letter or digit,
/// at most 253 characters).
pub fn is_valid_object_name(name: &str) -> bool {
    name.len() <= MAX_SUBDOMAIN
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.iter().all(|&b| is_label_char(b))
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        })
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// Why `name` is not a DNS label (RFC 1123; RFC 1035 when `letter_first`), or `None`.
fn label_problem(name: &str, letter_first: bool) -> Option<String> {
    let Some(first) = name.chars().next() else { return Some("is empty".into()) };
    if let Some(c) = name.chars().find(|c| !c.is_ascii() || !is_label_char(*c as u8)) {
        let what = if c.is_ascii_uppercase() { "the uppercase letter" } else { "the character" };
        return Some(format!("has {what} `{c}`"));
    }
    if name.len() > MAX_LABEL {
        return Some(format!("is {} characters long", name.len()));
    }
    if first == '-' || (letter_first && !first.is_ascii_lowercase()) {
        return Some(format!("starts with `{first}`"));
    }
    if name.ends_with('-') {
        return Some("ends with `-`".into());
    }
    None
}

/// `smart-plugs` → `SmartPlugs`.
fn upper_camel_case(name: &str) -> String {
    name.split('-')
        .flat_map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(store: &str) -> Result<CrdNames, CrdError> {
        CrdNames::of(&store.parse().unwrap())
    }

    #[test]
    fn a_store_names_its_resource() {
        let orders = names("checkout/orders").unwrap();
        assert_eq!(
            orders,
            CrdNames {
                group: "checkout.knactor.dev".into(),
                version: "v1",
                kind: "Orders".into(),
                plural: "orders".into(),
                singular: "orders".into(),
            }
        );
        assert_eq!(orders.api_version(), "checkout.knactor.dev/v1");
        assert_eq!(orders.crd_name(), "orders.checkout.knactor.dev");

        let plugs = names("home-2/smart-plugs").unwrap();
        assert_eq!((plugs.kind.as_str(), plugs.singular.as_str()), ("SmartPlugs", "smartplugs"));
        assert_eq!(plugs.crd_name(), "smart-plugs.home-2.knactor.dev");
        assert_eq!(names("a/v2-x9").unwrap().kind, "V2X9");
    }

    #[test]
    fn the_runtimes_own_store_is_in_the_bare_group() {
        let checkpoints = names("_knactor/checkpoints").unwrap();
        assert_eq!(checkpoints.crd_name(), "checkpoints.knactor.dev");
        assert_eq!(store_label(&"_knactor/checkpoints".parse().unwrap()), "knactor.checkpoints");
    }

    #[test]
    fn names_kubernetes_refuses_say_which_and_why() {
        let cases = [
            (
                "checkout/Orders",
                NameRole::Store,
                "store name `Orders` has the uppercase letter `O`",
            ),
            ("checkout/my_store", NameRole::Store, "store name `my_store` has the character `_`"),
            ("checkout/2fa", NameRole::Store, "store name `2fa` starts with `2`"),
            ("checkout/orders-", NameRole::Store, "store name `orders-` ends with `-`"),
            ("Checkout/orders", NameRole::Knactor, "knactor name `Checkout` has the uppercase"),
            ("my.app/orders", NameRole::Knactor, "knactor name `my.app` has the character `.`"),
            ("-x/orders", NameRole::Knactor, "knactor name `-x` starts with `-`"),
        ];
        for (store, want_role, want) in cases {
            let err = names(store).unwrap_err();
            let CrdError::InvalidName { role, .. } = &err else { panic!("{err}") };
            assert_eq!(*role, want_role, "{store}");
            let message = err.to_string();
            assert!(message.starts_with(want), "{message}\n  wanted: {want}");
            assert!(message.contains("Kubernetes accepts"), "{message}");
        }
        // A knactor may start with a digit (DNS-1123); a store may not (DNS-1035).
        assert!(names("2fa/codes").is_ok());

        let long = "s".repeat(64);
        let err = names(&format!("k/{long}")).unwrap_err().to_string();
        assert!(err.contains("is 64 characters long"), "{err}");
        let (knactor, store) = ("k".repeat(40), "s".repeat(30));
        let err = names(&format!("{knactor}/{store}")).unwrap_err().to_string();
        assert!(err.contains("71 characters"), "{err}");
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        for good in ["order-1042", "a", "a.b-c.d", "0", &"a".repeat(253)] {
            assert!(is_valid_object_name(good), "{good}");
        }
        for bad in ["", "Order", "a_b", "-a", "a-", "a..b", ".a", "a.", "é", &"a".repeat(254)] {
            assert!(!is_valid_object_name(bad), "{bad}");
        }
    }
}
