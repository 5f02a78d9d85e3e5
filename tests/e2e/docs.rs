//! The docs name only what exists: every repository path and relative link in README.md and
//! docs/ is there.

use std::path::{Path, PathBuf};

use crate::harness::repo;

/// How a repository path named in prose starts (`knactor/` alone would be a knactor's name).
const ROOTS: [&str; 14] = [
    "apps/",
    "dxg-specs/",
    "docs/",
    "tests/",
    "scripts/",
    ".ci/",
    "knactor/src",
    "knactor/tests",
    "knactor-cli/src",
    "integrators/src",
    "integrators/tests",
    "data-exchange/src",
    "data-exchange/tests",
    "data-exchange/benches",
];

/// The documents checked.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

/// The targets of the relative Markdown links of `text`, without their `#anchor`.
fn links(text: &str) -> Vec<&str> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')')?];
            let target = target.split('#').next().unwrap_or_default();
            (!target.is_empty() && !target.contains("://") && !target.starts_with("mailto:"))
                .then_some(target)
        })
        .collect()
}

/// The repository paths named in `text`: words starting with one of [`ROOTS`], but
/// placeholders (`apps/NAME`, `{...}`) and what an app makes when it runs (its `.knactor/`
/// data directory, ignored by git); of a glob, the directory it is in.
fn named_paths(text: &str) -> Vec<&str> {
    let separators = |c: char| c.is_whitespace() || "`()[],;\"'<>|=".contains(c);
    text.split(separators)
        // Without an `#anchor` or a `:line:column`.
        .map(|word| word.split(['#', ':']).next().unwrap_or_default().trim_end_matches('.'))
        .filter(|word| ROOTS.iter().any(|root| word.starts_with(root)))
        .map(|word| match word.find('*') {
            Some(star) => &word[..word[..star].rfind('/').map_or(0, |slash| slash + 1)],
            None => word,
        })
        .filter(|word| {
            let placeholder = ["NAME", "APP", "{", "$", "...", "…"];
            !word.is_empty()
                && !placeholder.iter().any(|p| word.contains(p))
                && !word.contains("/.knactor/")
        })
        .collect()
}

#[test]
fn every_path_and_link_in_the_docs_exists() {
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        let dir = doc.parent().unwrap();
        for link in links(&text) {
            if !dir.join(link).exists() {
                missing.push(format!("{name}: link {link}"));
            }
        }
        for path in named_paths(&text) {
            if !Path::new(&repo()).join(path).exists() {
                missing.push(format!("{name}: {path}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "named in the docs, not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_check_reads_paths_and_links_as_a_reader_would() {
    let text = "See `dxg-specs/hello/` and [it](../apps/none.yaml#top), not `apps/NAME`; \
                dxg-specs/retail/checkout.yaml:38:18: error, [web](https://example.com), \
                `apps/none/*.yaml`, `apps/hello/.knactor/hello/tokens/operator`.";
    let named = ["dxg-specs/hello/", "dxg-specs/retail/checkout.yaml", "apps/none/"];
    assert_eq!(named_paths(text), named);
    assert_eq!(links(text), ["../apps/none.yaml"]);
}

/// The generated tables of docs/BENCHMARKS.md are the ones their JSON in docs/bench/ gives.
#[test]
fn the_benchmark_tables_are_made_from_their_json() {
    let checked = std::process::Command::new(repo().join("scripts/bench-tables"))
        .arg("check")
        .output()
        .expect("python3 runs scripts/bench-tables");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
}
