//! How `knactor get` prints objects: a table, YAML, JSON, or JSONPath results.

use std::str::FromStr;

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// The `-o` formats.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Output {
    Table,
    /// The table, with each object's whole data.
    Wide,
    /// Each object's name, one per line.
    Name,
    Yaml,
    Json,
    JsonPath(String),
}

impl FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Output::Table),
            "wide" => Ok(Output::Wide),
            "name" => Ok(Output::Name),
            "yaml" => Ok(Output::Yaml),
            "json" => Ok(Output::Json),
            _ => match s.strip_prefix("jsonpath=") {
                Some(given) => {
                    let expr = kubectl_template(given);
                    // Check the expression up front, so a typo fails before any request.
                    Value::Null.query(&expr).map_err(|_| {
                        format!(
                            "invalid JSONPath `{given}`: write a path such as `$.data.total` or, as kubectl does, `{{.data.total}}`"
                        )
                    })?;
                    Ok(Output::JsonPath(expr))
                }
                None => Err(format!(
                    "unknown output `{s}`: use table, wide, name, yaml, json or jsonpath=EXPR"
                )),
            },
        }
    }
}

/// kubectl's template form of a path, `{.data.x}`, as the JSONPath `$.data.x`; any other
/// expression as it is.
fn kubectl_template(expr: &str) -> String {
    match expr.strip_prefix("{.").and_then(|e| e.strip_suffix('}')) {
        Some(path) => format!("$.{path}"),
        None => expr.to_owned(),
    }
}

impl Output {
    /// Renders `value` (an object, a list `{version, items}` or a watch event).
    pub(super) fn render(&self, value: &Value) -> String {
        match self {
            Output::Table => table(value, Some(DATA_WIDTH)),
            Output::Wide => table(value, None),
            Output::Name => {
                items(value).iter().map(|o| format!("{}\n", scalar(&o["name"]))).collect()
            }
            Output::Yaml => serde_yaml::to_string(value).expect("JSON values serialize"),
            Output::Json => {
                let mut json = serde_json::to_string_pretty(value).expect("JSON values serialize");
                json.push('\n');
                json
            }
            Output::JsonPath(expr) => {
                let found = value.query(expr).unwrap_or_default();
                found.into_iter().map(|v| format!("{}\n", scalar(v))).collect()
            }
        }
    }

    /// Renders one watch event on one line (JSON formats) or as a table row.
    pub(super) fn render_event(&self, event: &Value) -> String {
        match self {
            Output::Table | Output::Wide => {
                let kind = event["type"].as_str().unwrap_or_default();
                let width = (*self == Output::Table).then_some(DATA_WIDTH);
                format!("{kind:<9} {}", row(&event["object"], width))
            }
            Output::Name => format!("{}\n", scalar(&event["object"]["name"])),
            Output::Json => format!("{event}\n"),
            Output::Yaml => format!("---\n{}", self.render(event)),
            Output::JsonPath(_) => self.render(&event["object"]),
        }
    }

    /// The header line of a watch in table format.
    pub(super) fn event_header(&self) -> Option<String> {
        matches!(self, Output::Table | Output::Wide).then(|| format!("{:<9} {}", "EVENT", header()))
    }
}

/// The running specs as a table: name, kind, version, when applied.
pub(super) fn spec_table(specs: &[knactor::specs::SpecStatus]) -> String {
    let mut text =
        format!("{:<24} {:<5} {:>7}  {:<20}  SHADOW\n", "NAME", "KIND", "VERSION", "APPLIED");
    for spec in specs {
        let (name, kind, version) = (&spec.name, &spec.kind, spec.version);
        let shadow = spec.shadow.as_deref().map_or("-".to_owned(), |s| format!("since {s}"));
        text.push_str(&format!(
            "{name:<24} {kind:<5} {version:>7}  {:<20}  {shadow}\n",
            spec.applied
        ));
    }
    text
}

/// `knactor diff spec`: each differing field (Cast) or each destination's records (Sync), then
/// the counts.
pub(super) fn shadow_diff(diff: &knactor::shadow::ShadowDiff) -> String {
    let mut text = String::new();
    if !diff.differences.is_empty() {
        text = format!("{:<24} {:<24} {:<20} {:<16} SHADOW\n", "STORE", "NAME", "FIELD", "LIVE");
    }
    for d in &diff.differences {
        let live = d.live.as_ref().map_or_else(|| "-".to_owned(), scalar);
        let (store, name, field, shadow) = (&d.store, &d.name, &d.field, scalar(&d.shadow));
        text.push_str(&format!("{store:<24} {name:<24} {field:<20} {live:<16} {shadow}\n"));
    }
    if !diff.records.is_empty() {
        let header = ("STORE", "LIVE", "SHADOW", "MISSING", "EXTRA");
        text = format!(
            "{:<24} {:>8} {:>8} {:>8} {:>8}\n",
            header.0, header.1, header.2, header.3, header.4
        );
    }
    for r in &diff.records {
        let (store, live, shadow, missing, extra) =
            (&r.store, r.live, r.shadow, r.missing, r.extra);
        text.push_str(&format!("{store:<24} {live:>8} {shadow:>8} {missing:>8} {extra:>8}\n"));
        for (side, records) in [("only live", &r.only_live), ("only shadow", &r.only_shadow)] {
            for record in records {
                text.push_str(&format!("  {side}: {record}\n"));
            }
        }
    }
    let (differing, compared, name, since) =
        (diff.differing, diff.compared, &diff.name, &diff.since);
    if diff.records.is_empty() {
        text.push_str(&format!(
            "{name}: {differing} of {compared} objects the shadow wrote since {since} differ"
        ));
        let fields: Vec<String> = diff
            .fields
            .iter()
            .map(|f| format!("{}.{} {}", f.store, f.field, f.differing))
            .collect();
        if !fields.is_empty() {
            text.push_str(&format!(" ({})", fields.join(", ")));
        }
    } else {
        text.push_str(&format!(
            "{name}: {} appended by one side only, since {since} (the shadow appended {compared})",
            knactor::specs::counted(differing as usize, "record")
        ));
    }
    text.push('\n');
    if diff.failures > 0 {
        let failures = diff.failures;
        text.push_str(&format!(
            "{failures} of the shadow's edge evaluations failed: see the server's log\n"
        ));
    }
    text
}

/// A string as itself, anything else as compact JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn header() -> String {
    format!("{:<24} {:>8}  DATA\n", "NAME", "VERSION")
}

/// The width of the `HELD BY` column (`get --show-retention`).
const HELD_WIDTH: usize = 28;

/// How much of an object's data a table row shows (`-o wide`: all of it).
const DATA_WIDTH: usize = 72;

/// An object's row, its data cut at `width` characters.
fn row(object: &Value, width: Option<usize>) -> String {
    let name = object["name"].as_str().unwrap_or_default();
    let mut version = object["version"].to_string();
    if let Some(held) = object.get("heldBy").and_then(Value::as_array) {
        let held: Vec<String> = held.iter().map(scalar).collect();
        let held = if held.is_empty() { "-".to_owned() } else { held.join(",") };
        version = format!("{version:>8}  {held:<HELD_WIDTH$}");
    }
    let mut data = object["data"].to_string();
    if let Some(width) = width
        && data.chars().count() > width
    {
        data = data.chars().take(width - 1).chain(['…']).collect();
    }
    format!("{name:<24} {version:>8}  {data}\n")
}

/// The objects of a list `{items}`, or the one object `value` is.
fn items(value: &Value) -> Vec<&Value> {
    match value.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![value],
    }
}

fn table(value: &Value, width: Option<usize>) -> String {
    let objects = items(value);
    let mut text = match value.get("retention").is_some() {
        true => format!("{:<24} {:>8}  {:<HELD_WIDTH$}  DATA\n", "NAME", "VERSION", "HELD BY"),
        false => header(),
    };
    for object in objects {
        text.push_str(&row(object, width));
    }
    text
}

/// The `field` of each entry of `list`, one a line (`-o name` of the stores).
pub(super) fn names(list: &Value, field: &str) -> String {
    let entries = list.as_array().into_iter().flatten();
    entries.map(|entry| format!("{}\n", scalar(&entry[field]))).collect()
}

/// The stores as a table: ref, kind, owner, how many objects or records.
pub(super) fn store_table(stores: &Value) -> String {
    let mut text = format!("{:<28} {:<6} {:<16} {:>8}\n", "STORE", "KIND", "OWNER", "COUNT");
    for store in stores["stores"].as_array().into_iter().flatten() {
        let (name, kind, owner) =
            (scalar(&store["store"]), scalar(&store["kind"]), scalar(&store["owner"]));
        let count = match &store["count"] {
            Value::Null => "-".to_owned(),
            count => scalar(count),
        };
        text.push_str(&format!("{name:<28} {kind:<6} {owner:<16} {count:>8}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonpath_prints_strings_raw_and_the_rest_as_json() {
        let output: Output = "jsonpath=$.data.items[*]".parse().unwrap();
        let object = json!({"name": "o", "version": 3, "data": {"items": ["a", {"b": 1}]}});
        assert_eq!(output.render(&object), "a\n{\"b\":1}\n");
    }

    #[test]
    fn kubectl_templates_are_paths_too() {
        let output: Output = "jsonpath={.data.items[*]}".parse().unwrap();
        assert_eq!(output, Output::JsonPath("$.data.items[*]".into()));
        let object = json!({"name": "o", "version": 3, "data": {"items": ["a", "b"]}});
        assert_eq!(output.render(&object), "a\nb\n");
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!("xml".parse::<Output>().unwrap_err().contains("unknown output"));
        let refused = "jsonpath=$.[".parse::<Output>().unwrap_err();
        assert!(refused.starts_with("invalid JSONPath `$.[`: write a path such as"), "{refused}");
        assert!(!refused.contains('\n'), "one line, not the parser's dump: {refused}");
    }

    #[test]
    fn table_lists_name_version_and_data() {
        let list = json!({"version": 2, "items": [{"name": "a", "version": 2, "data": {"x": 1}}]});
        let text = Output::Table.render(&list);
        assert!(text.starts_with("NAME"), "{text}");
        assert!(text.contains("a                               2  {\"x\":1}"), "{text}");
    }
}
