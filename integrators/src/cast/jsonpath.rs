//! JSONPath values of Cast edges, parsed once by jsonpath-rust's parser and evaluated from
//! the parsed form.

use data_exchange::edge::{Path, Step};
use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value as Json;

/// A parsed JSONPath query over a document whose top-level keys are the aliases
/// (`$.order.items[0].price`).
#[derive(Debug)]
pub struct JsonPathExpr {
    source: String,
    query: JpQuery,
    /// Whether it can match several values (wildcards, filters, slices, descendants, unions).
    many: bool,
}

impl JsonPathExpr {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Self, JsonPathError> {
        let query = parse_json_path(source)?;
        let many = query.segments.iter().any(may_match_many);
        Ok(JsonPathExpr { source: source.to_owned(), query, many })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The matches in `document`: `None` when there is none, the value when the path matches
    /// one value at most, else the list of matches.
    pub fn eval(&self, document: &Json) -> Result<Option<Json>, JsonPathError> {
        let found = js_path_process(&self.query, document)?;
        Ok(match found.as_slice() {
            [] => None,
            [one] if !self.many => Some(one.val.clone()),
            many => Some(Json::Array(many.iter().map(|found| found.val.clone()).collect())),
        })
    }

    /// The alias it starts from (`$.order...`: `order`).
    pub fn alias(&self) -> Option<&str> {
        self.names().next().flatten()
    }

    /// The alias and top-level field it starts with (`$.order.items[0]`: `order`, `items`).
    pub fn head(&self) -> Option<(&str, &str)> {
        let mut names = self.names();
        Some((names.next()??, names.next()??))
    }

    /// When it is exactly `$.alias.field`, that pair.
    pub fn as_field_copy(&self) -> Option<(&str, &str)> {
        self.head().filter(|_| self.query.segments.len() == 2)
    }

    /// When it is a plain path (`$.alias`, then field names and list positions), that path.
    pub fn as_plain(&self) -> Option<Path> {
        let alias = self.alias()?.to_owned();
        let steps = self.query.segments[1..].iter().map(|segment| match segment {
            Segment::Selector(Selector::Name(field)) => Some(Step::Field(field.clone())),
            Segment::Selector(Selector::Index(n)) => u64::try_from(*n).ok().map(Step::Index),
            _ => None,
        });
        Some(Path { alias, steps: steps.collect::<Option<_>>()? })
    }

    /// Whether it has a filter (`[?...]`), which may read anything of the document (`$`).
    pub fn filters(&self) -> bool {
        fn filters(segment: &Segment) -> bool {
            match segment {
                Segment::Descendant(inner) => filters(inner),
                Segment::Selector(selector) => matches!(selector, Selector::Filter(_)),
                Segment::Selectors(selectors) => {
                    selectors.iter().any(|s| matches!(s, Selector::Filter(_)))
                }
            }
        }
        self.query.segments.iter().any(filters)
    }

    /// Per segment, the name it selects when it selects one name.
    fn names(&self) -> impl Iterator<Item = Option<&str>> {
        self.query.segments.iter().map(|segment| match segment {
            Segment::Selector(Selector::Name(name)) => Some(name.as_str()),
            _ => None,
        })
    }
}

/// Whether a segment can select several values.
fn may_match_many(segment: &Segment) -> bool {
    let one = |selector: &Selector| matches!(selector, Selector::Name(_) | Selector::Index(_));
    match segment {
        Segment::Descendant(_) => true,
        Segment::Selector(selector) => !one(selector),
        Segment::Selectors(selectors) => selectors.len() > 1 || !selectors.iter().all(one),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_yields_one_match_or_a_list() {
        let doc = json!({"order": {"items": [{"p": 1}, {"p": 2}]}});
        let eval = |path: &str| JsonPathExpr::parse(path).unwrap().eval(&doc).unwrap();
        assert_eq!(eval("$.order.items[0].p"), Some(json!(1)));
        assert_eq!(eval("$.order.items[*].p"), Some(json!([1, 2])));
        assert_eq!(eval("$.order.items[?@.p > 1].p"), Some(json!([2])));
        assert_eq!(eval("$..p"), Some(json!([1, 2])));
        assert_eq!(eval("$.order.items[0:1].p"), Some(json!([1])));
        assert_eq!(eval("$.order.items[0,1].p"), Some(json!([1, 2])));
        assert_eq!(eval("$.order['items'][1]"), Some(json!({"p": 2})));
        assert_eq!(eval("$.order.missing"), None);
    }

    #[test]
    fn heads_and_plain_paths_come_from_the_parsed_segments() {
        let parse = |path: &str| JsonPathExpr::parse(path).unwrap();
        assert_eq!(parse("$.order.items[0].sku").head(), Some(("order", "items")));
        assert_eq!(parse("$.order").head(), None);
        assert_eq!(parse("$.order").alias(), Some("order"));
        assert_eq!(parse("$.order.total").as_field_copy(), Some(("order", "total")));
        assert_eq!(parse("$.order.items[0]").as_field_copy(), None);
        let plain = parse("$.order.items[0].sku").as_plain().unwrap();
        assert_eq!(plain.alias, "order");
        let steps = [Step::Field("items".into()), Step::Index(0), Step::Field("sku".into())];
        assert_eq!(plain.steps, steps);
        for not_plain in ["$.order.items[*].sku", "$.order.items[-1]", "$..sku", "$[0]"] {
            assert_eq!(parse(not_plain).as_plain(), None, "{not_plain}");
        }
    }
}
