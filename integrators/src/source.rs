//! Spec files: YAML parsed into typed specs, with problems located at file:line:column.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Whether a diagnostic stops the spec from being used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The spec is rejected.
    Error,
    /// The spec is accepted, but something in it is probably a mistake.
    Warning,
}

/// A problem in a spec, at a place in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The spec file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let (file, line, column) = (self.file.display(), self.line, self.column);
        write!(f, "{file}:{line}:{column}: {severity}: {}", self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Every problem found in one or more specs; an error when any of them is an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// `Err(self)` when there are errors, else `Ok(value)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.has_errors() { Err(self) } else { Ok(value) }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// One step of a path into a YAML document: a mapping key or a sequence index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A sequence index.
    Index(usize),
}

impl<'a> From<&'a str> for Step<'a> {
    fn from(key: &'a str) -> Self {
        Step::Key(key)
    }
}

impl From<usize> for Step<'_> {
    fn from(index: usize) -> Self {
        Step::Index(index)
    }
}

/// A spec file's text, and where each of its values is.
#[derive(Clone, Debug)]
pub struct SpecFile {
    path: PathBuf,
    text: String,
    nodes: OnceLock<Option<marked_yaml::Node>>,
    /// Where the text first nests too deep, if it does ([`too_deep`]), found once.
    depth: OnceLock<Option<(usize, usize)>>,
}

impl SpecFile {
    /// Reads the spec at `path`.
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        let text = std::fs::read_to_string(path).map_err(|e| Diagnostic {
            severity: Severity::Error,
            file: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read: {e}"),
        })?;
        Ok(SpecFile::from_text(path, text))
    }

    /// A spec whose text is already in memory; `path` names it in diagnostics.
    pub fn from_text(path: &Path, text: impl Into<String>) -> Self {
        let (nodes, depth) = (OnceLock::new(), OnceLock::new());
        SpecFile { path: path.to_owned(), text: text.into(), nodes, depth }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the text first nests deeper than [`MAX_YAML_DEPTH`], if it does.
    fn too_deep(&self) -> Option<(usize, usize)> {
        *self.depth.get_or_init(|| too_deep(&self.text))
    }

    /// Deserializes the whole document; a YAML or format error is located where it was found.
    /// A document nested deeper than [`MAX_YAML_DEPTH`] is refused before it is parsed.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        if let Some((line, column)) = self.too_deep() {
            let message = format!("nested deeper than {MAX_YAML_DEPTH} levels");
            return Err(Diagnostic {
                severity: Severity::Error,
                file: self.path.clone(),
                line,
                column,
                message,
            });
        }
        serde_yaml::from_str(&self.text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            // serde_yaml appends " at line L column C"; the location goes in front instead.
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(cut) if e.location().is_some() => message[..cut].to_owned(),
                _ => message,
            };
            Diagnostic { severity: Severity::Error, file: self.path.clone(), line, column, message }
        })
    }

    /// An error at the value found by following `path` from the document's root (or at the
    /// deepest part of the path that exists).
    pub fn error_at(&self, path: &[Step<'_>], message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Error, path, message)
    }

    /// An error at the key of the mapping entry `path` ends in (`oneOf:` rather than the list
    /// under it): where a key is the mistake. Like [`error_at`](Self::error_at) when the last
    /// step is not a key, or the key is not there.
    pub fn error_at_key(&self, path: &[Step<'_>], message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.locate_key(path);
        let (severity, file, message) = (Severity::Error, self.path.clone(), message.into());
        Diagnostic { severity, file, line, column, message }
    }

    /// A warning at the value found by following `path`.
    pub fn warning_at(&self, path: &[Step<'_>], message: impl Into<String>) -> Diagnostic {
        self.diagnostic(Severity::Warning, path, message)
    }

    fn diagnostic(
        &self,
        severity: Severity,
        path: &[Step<'_>],
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = self.locate(path);
        Diagnostic { severity, file: self.path.clone(), line, column, message: message.into() }
    }

    /// The 1-based line and column of the value at `path`.
    pub fn locate(&self, path: &[Step<'_>]) -> (usize, usize) {
        let Some((node, _)) = self.node_at(path) else { return (1, 1) };
        // A block mapping's own mark is odd (at its first colon): point at its first key.
        let span = match node {
            marked_yaml::Node::Mapping(map) => map.keys().next().map_or(node.span(), |k| k.span()),
            _ => node.span(),
        };
        span.start().map_or((1, 1), |m| (m.line(), m.column()))
    }

    /// The 1-based line and column of the key `path` ends in, or of its value (see
    /// [`error_at_key`](Self::error_at_key)).
    pub fn locate_key(&self, path: &[Step<'_>]) -> (usize, usize) {
        if let Some((Step::Key(key), parent)) = path.split_last()
            && let Some((marked_yaml::Node::Mapping(map), true)) = self.node_at(parent)
            && let Some(mark) =
                map.keys().find(|k| k.as_str() == *key).and_then(|k| k.span().start())
        {
            return (mark.line(), mark.column());
        }
        self.locate(path)
    }

    /// The node at `path` (or at the deepest part of it that exists), and whether it is the
    /// whole path's.
    fn node_at(&self, path: &[Step<'_>]) -> Option<(&marked_yaml::Node, bool)> {
        let nodes = self.nodes.get_or_init(|| {
            self.too_deep().is_none().then(|| marked_yaml::parse_yaml(0, &self.text).ok())?
        });
        let mut node = nodes.as_ref()?;
        for step in path {
            let next = match (step, node) {
                (Step::Key(key), marked_yaml::Node::Mapping(map)) => map.get_node(key),
                (Step::Index(i), marked_yaml::Node::Sequence(seq)) => seq.get_node(*i),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return Some((node, false)),
            }
        }
        Some((node, true))
    }
}

/// The deepest nesting of mappings and sequences a spec or manifest may have. YAML parsers
/// take time and stack in proportion to the depth, or worse; a real spec nests about 20 deep.
pub const MAX_YAML_DEPTH: usize = 100;

/// Where `text` first nests deeper than [`MAX_YAML_DEPTH`] (line, column), found without
/// parsing it. The depth reckoned is close to the real one: each indentation deeper than the
/// line before, each `- ` or `? ` that opens a line's node, and each `[` or `{` open outside
/// quoted scalars and comments (a sequence written at its parent's indentation is not counted).
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if flow == 0 {
            while indents.last().is_some_and(|&open| open >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut depth = indents.len() + flow;
        let mut rest = content;
        while let Some(next) = rest.strip_prefix("- ").or_else(|| rest.strip_prefix("? ")) {
            depth += 1;
            if depth > MAX_YAML_DEPTH {
                return Some((number + 1, line.len() - rest.len() + 1));
            }
            rest = next.trim_start_matches(' ');
        }
        let mut quote = None;
        let mut escaped = false;
        // The last character before this one that is not a space (none: the line's start).
        let mut last = None;
        for (i, c) in rest.char_indices() {
            // A quote opens a quoted scalar only where a scalar starts; `\` escapes in `"..."`.
            let scalar_starts = last.is_none_or(|l| matches!(l, ':' | '-' | '[' | '{' | ',' | '?'));
            if c != ' ' {
                last = Some(c);
            }
            match (quote, c) {
                (Some('"'), '\\') if !escaped => {
                    escaped = true;
                    continue;
                }
                (Some(q), c) if c == q && !escaped => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') if scalar_starts => quote = Some(c),
                (None, '#') if i == 0 || rest[..i].ends_with(' ') => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            escaped = false;
            if depth.max(indents.len() + flow) > MAX_YAML_DEPTH {
                return Some((number + 1, line.len() - rest.len() + i + 1));
            }
        }
    }
    None
}

/// The API version every manifest declares.
pub const API_VERSION: &str = "knactor.dev/v1";

/// A manifest document: `apiVersion`, `kind`, `metadata` and a kind-specific `spec`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest<S> {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// `Knactor`, `App`, `Cast` or `Sync`.
    pub kind: String,
    /// The document's name.
    pub metadata: Metadata,
    /// What the document declares.
    pub spec: S,
}

/// A manifest's metadata.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The name: a knactor's name is the first part of its store refs.
    pub name: String,
}

/// The head of any manifest, read first to tell which kind it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
}

/// Parses `file` as a manifest of `kind`, checking its `apiVersion`, `kind` and name.
pub fn parse_manifest<S: DeserializeOwned>(
    file: &SpecFile,
    kind: &str,
) -> Result<Manifest<S>, Diagnostics> {
    let header: Header = file.parse()?;
    if header.api_version.as_deref() != Some(API_VERSION) {
        let found = header.api_version.unwrap_or_else(|| "nothing".into());
        let message = format!("apiVersion must be `{API_VERSION}`, found `{found}`");
        return Err(file.error_at(&["apiVersion".into()], message).into());
    }
    if header.kind.as_deref() != Some(kind) {
        let found = header.kind.unwrap_or_else(|| "nothing".into());
        let message = format!("expected a manifest of kind `{kind}`, found `{found}`");
        return Err(file.error_at(&["kind".into()], message).into());
    }
    let manifest: Manifest<S> = file.parse()?;
    if !data_exchange::object::is_valid_name(&manifest.metadata.name)
        || manifest.metadata.name.contains('/')
    {
        let message = format!(
            "invalid name `{}`: use letters, digits, '-', '_' and '.'",
            manifest.metadata.name
        );
        return Err(file.error_at(&["metadata".into(), "name".into()], message).into());
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "kind: Knactor\nspec:\n  stores:\n    - name: a\n    - name: b\n";

    #[test]
    fn locates_values_by_path() {
        let file = SpecFile::from_text(Path::new("k.yaml"), SPEC);
        assert_eq!(
            file.locate(&["spec".into(), "stores".into(), 1.into(), "name".into()]),
            (5, 13)
        );
        let d = file.error_at(&["spec".into(), "stores".into(), 0.into()], "duplicate");
        assert_eq!(d.to_string(), "k.yaml:4:7: error: duplicate");
    }

    #[test]
    fn locates_keys_by_path() {
        let text = "spec:\n  schema:\n    oneOf:\n      - type: string\n    title: x\n";
        let file = SpecFile::from_text(Path::new("k.yaml"), text);
        let one_of = ["spec".into(), "schema".into(), "oneOf".into()];
        assert_eq!(file.locate(&one_of), (4, 7));
        assert_eq!(file.locate_key(&one_of), (3, 5));
        assert_eq!(file.locate_key(&["spec".into(), "schema".into(), "title".into()]), (5, 5));
        // Not a key, or no such key: the value, as `locate` finds it.
        assert_eq!(file.locate_key(&[]), (1, 1));
        let missing = ["spec".into(), "schema".into(), "nope".into()];
        assert_eq!(file.locate_key(&missing), file.locate(&missing));
        let d = file.error_at_key(&one_of, "refused");
        assert_eq!(d.to_string(), "k.yaml:3:5: error: refused");
    }

    #[test]
    fn parse_errors_carry_their_location() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Doc {
            kind: String,
        }
        let file = SpecFile::from_text(Path::new("k.yaml"), "kind: A\nkinds: B\n");
        let d = file.parse::<Doc>().unwrap_err();
        assert_eq!((d.line, d.column), (2, 1), "{d}");
        assert!(d.message.contains("unknown field `kinds`"), "{d}");
        assert!(!d.message.contains("at line"), "{d}");
    }

    #[test]
    fn a_document_nested_too_deep_is_refused_before_parsing_where_it_gets_too_deep() {
        let file = |text: String| SpecFile::from_text(Path::new("k.yaml"), text);
        let flow = format!("a: {}1{}\n", "[".repeat(20_000), "]".repeat(20_000));
        let d = file(flow).parse::<serde_yaml::Value>().unwrap_err();
        assert_eq!(d.to_string(), "k.yaml:1:103: error: nested deeper than 100 levels");
        let dashes = format!("# a list\n{}1\n", "- ".repeat(20_000));
        let d = file(dashes).parse::<serde_yaml::Value>().unwrap_err();
        assert_eq!((d.line, d.column), (2, 199), "{d}");
        let mut block = String::new();
        for level in 0..=MAX_YAML_DEPTH {
            block += &format!("{}k{level}:\n", " ".repeat(level));
        }
        let d = file(block).parse::<serde_yaml::Value>().unwrap_err();
        assert_eq!(d.line, MAX_YAML_DEPTH + 1, "{d}");
        // As deep as allowed, with brackets and quotes in strings and comments, parses.
        let fine = format!("a: {}'[{{' # [[[\n{}", "[".repeat(99), "]".repeat(99));
        assert!(file(fine).parse::<serde_yaml::Value>().is_ok());
        let escaped = format!("a: {}\"[\\\"[\"{}\nb: |\n  '[[[\n", "[".repeat(99), "]".repeat(99));
        assert!(file(escaped).parse::<serde_yaml::Value>().is_ok());
        // A quote inside a plain scalar opens nothing: what follows still counts.
        let plain = format!("a: [x'y, {}1{}]\n", "[".repeat(200), "]".repeat(200));
        assert!(file(plain).parse::<serde_yaml::Value>().is_err());
    }
}
