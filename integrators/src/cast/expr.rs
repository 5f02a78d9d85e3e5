//! Cast expressions: CEL (the `cel` crate) and JSONPath (`jsonpath-rust`), compiled once.
//!
//! Numbers are doubles, as in JSON: every number read from an object, and every integer literal
//! written in an expression, is a CEL `double`, so `order.total > 100` holds for a total of
//! 120.5. Results convert back to JSON with integral doubles written as integers.
//! `sum`, `min`, `max`, `avg` and `count` take a list (or several arguments).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::extractors::Arguments;
use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, ParseErrors, Program, ResolveResult, Value as Cel};
use jsonpath_rust::parser::errors::JsonPathError;
use serde_json::{Number, Value as Json};

use super::cel_bounds::{self, Loops};
use super::jsonpath::JsonPathExpr;

/// Why an expression does not compile or does not evaluate.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    /// A CEL expression does not parse.
    #[error("CEL syntax error in `{expr}`: {error}")]
    CelSyntax {
        /// The expression as written.
        expr: String,
        /// CEL's own message.
        #[source]
        error: ParseErrors,
    },
    /// A JSONPath does not parse.
    #[error("JSONPath syntax error in `{expr}`: {error}")]
    PathSyntax {
        /// The path as written.
        expr: String,
        /// The parser's message.
        #[source]
        error: JsonPathError,
    },
    /// A CEL expression failed on the data it was given.
    #[error("evaluating `{expr}`: {error}")]
    Cel {
        /// The expression as written.
        expr: String,
        /// CEL's own message.
        #[source]
        error: ExecutionError,
    },
    /// A JSONPath failed on the document it was given.
    #[error("`{expr}`: {error}")]
    Path {
        /// The path as written.
        expr: String,
        /// The query's message.
        #[source]
        error: JsonPathError,
    },
    /// A CEL expression is too large or too costly to run (see [`cel_bounds`]), or holds
    /// an invalid regular expression.
    #[error("CEL expression `{expr}` {reason}")]
    Bounds {
        /// The start of the expression as written.
        expr: String,
        /// Which bound it passes, or why its pattern is invalid.
        reason: String,
    },
    /// An expression gave a value of another type than its role needs.
    #[error("`{role}` must give a {want}, gave {got}")]
    Type {
        /// What the expression is for (`key`, `when`).
        role: &'static str,
        /// The type it must give.
        want: &'static str,
        /// What it gave.
        got: Json,
    },
}

/// A compiled CEL expression.
#[derive(Debug)]
pub struct CelExpr {
    source: String,
    program: Program,
    loops: Loops,
}

impl CelExpr {
    /// Compiles `source`, refused when it is too large or too costly to run
    /// ([`cel_bounds`]).
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        let bounds = |reason| ExprError::Bounds { expr: abridged(source), reason };
        cel_bounds::check_source(source).map_err(bounds)?;
        let program = Program::compile(&integer_literals_as_doubles(source))
            .map_err(|error| ExprError::CelSyntax { expr: source.to_owned(), error })?;
        cel_bounds::check_patterns(program.expression()).map_err(bounds)?;
        let mut reads = Walk::default();
        reads.visit(program.expression());
        let loops = Loops::of(program.expression(), reads.idents).map_err(bounds)?;
        Ok(CelExpr { source: source.to_owned(), program, loops })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression (integer literals outside indexes read as doubles).
    pub fn ast(&self) -> &IdedExpr {
        self.program.expression()
    }

    /// Evaluates the expression in `scope`.
    pub fn eval(&self, scope: &Context<'_, '_>) -> Result<Json, ExprError> {
        self.loops
            .check_inputs(scope)
            .map_err(|reason| ExprError::Bounds { expr: abridged(&self.source), reason })?;
        let value = self
            .program
            .execute(scope)
            .map_err(|error| ExprError::Cel { expr: self.source.clone(), error })?;
        Ok(cel_to_json(&value))
    }

    /// The identifiers the expression reads (aliases, `key`), without comprehension variables.
    pub fn identifiers(&self) -> BTreeSet<String> {
        let mut found = Walk::default();
        found.visit(self.program.expression());
        found.idents
    }

    /// The top-level fields the expression reads of each identifier: `order.total` reads
    /// (`order`, `total`); `has(shipment.trackingID)` reads (`shipment`, `trackingID`).
    pub fn field_reads(&self) -> BTreeSet<(String, String)> {
        let mut found = Walk::default();
        found.visit(self.program.expression());
        found.fields
    }

    /// The identifiers it reads other than by one of their fields (`size(order)`, `all`):
    /// every field of each may matter.
    pub fn whole_reads(&self) -> BTreeSet<String> {
        let mut found = Walk::default();
        found.visit(self.program.expression());
        found.whole
    }

    /// When the whole expression is `alias.field`, that pair.
    pub fn as_field_copy(&self) -> Option<(String, String)> {
        match &self.program.expression().expr {
            Expr::Select(select) if !select.test => match &select.operand.expr {
                Expr::Ident(alias) => Some((alias.clone(), select.field.clone())),
                _ => None,
            },
            _ => None,
        }
    }

    /// When the whole expression is a literal, its JSON type name.
    pub fn literal_type(&self) -> Option<&'static str> {
        match &self.program.expression().expr {
            Expr::Literal(literal) => Some(match literal {
                LiteralValue::Boolean(_) => "boolean",
                LiteralValue::Double(_) | LiteralValue::Int(_) | LiteralValue::UInt(_) => "number",
                LiteralValue::String(_) | LiteralValue::Bytes(_) => "string",
                LiteralValue::Null => "null",
            }),
            _ => None,
        }
    }
}

/// A `set` value: a JSONPath query when it starts with `$`, a CEL expression otherwise.
#[derive(Debug)]
pub enum ValueExpr {
    /// Evaluated over `{alias: data, ...}`.
    Path(JsonPathExpr),
    /// Evaluated with each alias bound to its data.
    Cel(CelExpr),
}

impl ValueExpr {
    /// Compiles `source`.
    pub fn compile(source: &str) -> Result<Self, ExprError> {
        if source.trim_start().starts_with('$') {
            let path = JsonPathExpr::parse(source)
                .map_err(|error| ExprError::PathSyntax { expr: source.to_owned(), error })?;
            Ok(ValueExpr::Path(path))
        } else {
            CelExpr::compile(source).map(ValueExpr::Cel)
        }
    }

    /// The alias and top-level field a JSONPath starts with (`$.order.items[0]`: `order`,
    /// `items`), or the field reads of a CEL expression.
    pub fn field_reads(&self) -> BTreeSet<(String, String)> {
        match self {
            ValueExpr::Cel(cel) => cel.field_reads(),
            ValueExpr::Path(path) => path.head().into_iter().map(owned).collect(),
        }
    }

    /// Whether it may read any field of `alias`: a JSONPath that starts from the alias but
    /// names no field of it, from no alias, or with a filter (which may read any alias); a
    /// CEL expression that reads the alias other than by one of its fields.
    pub fn reads_whole(&self, alias: &str) -> bool {
        match self {
            ValueExpr::Cel(cel) => cel.whole_reads().contains(alias),
            ValueExpr::Path(path) => {
                path.filters() || path.alias().is_none_or(|a| a == alias && path.head().is_none())
            }
        }
    }

    /// The identifiers read: the alias a JSONPath starts from, or a CEL expression's
    /// identifiers.
    pub fn identifiers(&self) -> BTreeSet<String> {
        match self {
            ValueExpr::Cel(cel) => cel.identifiers(),
            ValueExpr::Path(path) => path.alias().map(str::to_owned).into_iter().collect(),
        }
    }

    /// When the value copies one field (`order.items` or `$.order.items`), that field.
    pub fn as_field_copy(&self) -> Option<(String, String)> {
        match self {
            ValueExpr::Cel(cel) => cel.as_field_copy(),
            ValueExpr::Path(path) => path.as_field_copy().map(owned),
        }
    }

    /// Evaluates the value: `None` when a JSONPath matches nothing (the field is left unset).
    pub fn eval(
        &self,
        scope: &Context<'_, '_>,
        document: &Json,
    ) -> Result<Option<Json>, ExprError> {
        match self {
            ValueExpr::Cel(cel) => cel.eval(scope).map(Some),
            ValueExpr::Path(path) => path
                .eval(document)
                .map_err(|error| ExprError::Path { expr: path.source().to_owned(), error }),
        }
    }
}

/// The first 60 characters of `source`, to name a long expression in a message.
fn abridged(source: &str) -> String {
    match source.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &source[..end]),
        None => source.to_owned(),
    }
}

fn owned((alias, field): (&str, &str)) -> (String, String) {
    (alias.to_owned(), field.to_owned())
}

/// The JSON type name of a value, as JSON Schema spells it.
pub fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Collects identifiers and `ident.field` reads of an expression tree.
#[derive(Default)]
struct Walk {
    idents: BTreeSet<String>,
    fields: BTreeSet<(String, String)>,
    /// Identifiers read other than as `ident.field`.
    whole: BTreeSet<String>,
    /// Variables bound by the comprehensions (`all`, `map`, ...) being walked: not aliases,
    /// inside their bodies only.
    bound: Vec<String>,
}

impl Walk {
    fn visit(&mut self, node: &IdedExpr) {
        match &node.expr {
            Expr::Ident(name) if !self.bound.contains(name) => {
                self.idents.insert(name.clone());
                self.whole.insert(name.clone());
            }
            Expr::Ident(_) => {}
            Expr::Select(select) => match &select.operand.expr {
                Expr::Ident(name) if !self.bound.contains(name) => {
                    self.idents.insert(name.clone());
                    self.fields.insert((name.clone(), select.field.clone()));
                }
                _ => self.visit(&select.operand),
            },
            Expr::Comprehension(c) => {
                self.visit(&c.iter_range);
                self.visit(&c.accu_init);
                let outer = self.bound.len();
                self.bound.push(c.iter_var.clone());
                self.bound.extend(c.iter_var2.clone());
                self.bound.push(c.accu_var.clone());
                for part in [&c.loop_cond, &c.loop_step, &c.result] {
                    self.visit(part);
                }
                self.bound.truncate(outer);
            }
            _ => cel_bounds::children(node).into_iter().for_each(|child| self.visit(child)),
        }
    }
}

/// Rewrites integer literals outside strings and index brackets as doubles: `total > 100`
/// becomes `total > 100.0`, while `items[0]` and `"a1"` stay as they are.
fn integer_literals_as_doubles(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 8);
    let mut i = 0;
    let mut last_significant = ' ';
    // Whether the last `[` opened an index (`items[0]`) rather than a list (`[1, 2]`).
    let mut indexing = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            // Copy the string literal (with escapes) unchanged.
            let quote = c;
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                i += 1;
                if chars[i - 1] == quote {
                    break;
                }
            }
            last_significant = quote;
            continue;
        }
        let previous = if i == 0 { ' ' } else { chars[i - 1] };
        let part_of_name = previous.is_ascii_alphanumeric() || matches!(previous, '_' | '.');
        if c.is_ascii_digit() && !part_of_name {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.extend(&chars[start..i]);
            // `1.5`, `1e3`, `0x1F`, `7u` are not plain integers; `items[0]` is an index.
            let next = chars.get(i).copied().unwrap_or(' ');
            let plain = !(next.is_ascii_alphanumeric() || matches!(next, '.' | '_'));
            if plain && !(last_significant == '[' && indexing) {
                out.push_str(".0");
            }
            last_significant = '0';
            continue;
        }
        if c == '[' {
            // After the keyword `in`, a list (`x in [1, 2]`); after a name, a call or a
            // bracket, an index.
            let before = out.trim_end();
            let keyword_in = before.strip_suffix("in").is_some_and(|rest| {
                rest.chars().last().is_none_or(|p| !(p.is_ascii_alphanumeric() || "_.".contains(p)))
            });
            indexing = !keyword_in
                && (last_significant.is_ascii_alphanumeric()
                    || matches!(last_significant, '_' | ')' | ']' | '"' | '\''));
        }
        out.push(c);
        if !c.is_whitespace() {
            last_significant = c;
        }
        i += 1;
    }
    out
}

/// Converts JSON to CEL; every number becomes a double.
pub fn json_to_cel(value: &Json) -> Cel {
    match value {
        Json::Null => Cel::Null,
        Json::Bool(b) => Cel::Bool(*b),
        Json::Number(n) => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Cel::String(Arc::new(s.clone())),
        Json::Array(items) => Cel::List(Arc::new(items.iter().map(json_to_cel).collect())),
        Json::Object(map) => {
            let map: HashMap<Key, Cel> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

/// Converts CEL back to JSON; integral doubles become integers.
pub fn cel_to_json(value: &Cel) -> Json {
    match value {
        Cel::Null => Json::Null,
        Cel::Bool(b) => Json::Bool(*b),
        Cel::Int(i) => Json::from(*i),
        Cel::UInt(u) => Json::from(*u),
        Cel::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Json::from(*f as i64),
        Cel::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Cel::String(s) => Json::String(s.to_string()),
        Cel::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        Cel::List(items) => Json::Array(items.iter().map(cel_to_json).collect()),
        Cel::Map(map) => Json::Object(
            map.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, cel_to_json(v))
                })
                .collect(),
        ),
        other => Json::String(format!("{other:?}")),
    }
}

/// The CEL context expressions are evaluated in (see [`base_context`]).
pub type CelContext = Context<'static, 'static>;

/// A CEL context with the aggregation functions.
pub fn base_context() -> CelContext {
    let mut context = Context::default();
    for (name, f) in [
        ("sum", sum as fn(Arguments) -> ResolveResult),
        ("min", min),
        ("max", max),
        ("avg", avg),
        ("count", count),
    ] {
        context.add_function(name, f).expect("aggregation names are free");
    }
    context
}

/// The numbers of a call: one list argument, or the arguments themselves.
fn numbers(function: &str, args: &[Cel]) -> Result<Vec<f64>, ExecutionError> {
    let items: &[Cel] = match args {
        [Cel::List(items)] => items,
        _ => args,
    };
    items
        .iter()
        .map(|item| match item {
            Cel::Float(f) => Ok(*f),
            Cel::Int(i) => Ok(*i as f64),
            Cel::UInt(u) => Ok(*u as f64),
            other => {
                Err(ExecutionError::function_error(function, format!("not a number: {other:?}")))
            }
        })
        .collect()
}

fn sum(Arguments(args): Arguments) -> ResolveResult {
    Ok(Cel::Float(numbers("sum", &args)?.iter().sum()))
}

fn min(Arguments(args): Arguments) -> ResolveResult {
    Ok(numbers("min", &args)?.into_iter().reduce(f64::min).map_or(Cel::Null, Cel::Float))
}

fn max(Arguments(args): Arguments) -> ResolveResult {
    Ok(numbers("max", &args)?.into_iter().reduce(f64::max).map_or(Cel::Null, Cel::Float))
}

fn avg(Arguments(args): Arguments) -> ResolveResult {
    let numbers = numbers("avg", &args)?;
    if numbers.is_empty() {
        return Ok(Cel::Null);
    }
    Ok(Cel::Float(numbers.iter().sum::<f64>() / numbers.len() as f64))
}

fn count(Arguments(args): Arguments) -> ResolveResult {
    let n = match args.as_slice() {
        [Cel::List(items)] => items.len(),
        _ => args.len(),
    };
    Ok(Cel::Float(n as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(source: &str, bindings: &[(&str, Json)]) -> Json {
        let expr = CelExpr::compile(source).unwrap();
        let base = base_context();
        let mut scope = base.new_inner_scope();
        for (name, value) in bindings {
            scope.add_variable_from_value(*name, json_to_cel(value));
        }
        expr.eval(&scope).unwrap()
    }

    #[test]
    fn numbers_mix_ints_and_doubles_as_users_expect() {
        let order = json!({"total": 120.5, "qty": 3, "items": [{"price": 2}, {"price": 3}]});
        let bind = [("order", order)];
        assert_eq!(eval("order.total > 100", &bind), json!(true));
        assert_eq!(eval(r#"order.total > 100.0 ? "air" : "ground""#, &bind), json!("air"));
        assert_eq!(eval("order.qty * 2 + 1", &bind), json!(7));
        assert_eq!(eval("order.items[1].price", &bind), json!(3));
        assert_eq!(eval(r#""id-" + "7""#, &bind), json!("id-7"));
        assert_eq!(eval("sum(order.items.map(i, i.price))", &bind), json!(5));
        assert_eq!(eval("avg([1, 2])", &bind), json!(1.5));
        assert_eq!(eval("count(order.items)", &bind), json!(2));
        assert_eq!(eval("max(order.items.map(i, i.price)) - min([4, 1])", &bind), json!(2));
    }

    #[test]
    fn literals_in_strings_and_indexes_are_untouched() {
        assert_eq!(integer_literals_as_doubles(r#"a[0] + 1 == "v2 3""#), r#"a[0] + 1.0 == "v2 3""#);
        assert_eq!(integer_literals_as_doubles("x2 > 10 && y.z1 < 2.5"), "x2 > 10.0 && y.z1 < 2.5");
        // A list literal's numbers are doubles like any other; an index stays an integer.
        assert_eq!(integer_literals_as_doubles("[1, a[0], [2]]"), "[1.0, a[0], [2.0]]");
        assert_eq!(
            integer_literals_as_doubles("x in [1, 2] && bin[0]"),
            "x in [1.0, 2.0] && bin[0]"
        );
        assert_eq!(eval("[1, 2].all(a, a + 1 >= 0)", &[]), json!(true));
    }

    #[test]
    fn reads_are_found_through_macros_and_comprehensions() {
        let expr = CelExpr::compile("has(shipment.trackingID) && order.items.all(i, i.price > 0)")
            .unwrap();
        let reads: Vec<_> = expr.field_reads().into_iter().collect();
        assert_eq!(
            reads,
            [("order".into(), "items".into()), ("shipment".into(), "trackingID".into())]
        );
        let idents: Vec<_> = expr.identifiers().into_iter().collect();
        assert_eq!(idents, ["order", "shipment"]);
    }

    #[test]
    fn a_comprehension_variable_hides_an_alias_of_its_name_in_its_body_only() {
        let expr =
            CelExpr::compile("orders.map(order, order.total).size() > 0 && order.fee > 0").unwrap();
        let reads: Vec<_> = expr.field_reads().into_iter().collect();
        assert_eq!(reads, [("order".into(), "fee".into())]);
        assert_eq!(expr.whole_reads().into_iter().collect::<Vec<_>>(), ["orders"]);
    }

    #[test]
    fn nested_comprehensions_scope_their_variables_to_their_own_bodies() {
        // `item` is bound inside the inner `exists` only: after it, `item.sku` is the alias's.
        let source = "orders.all(o, o.items.exists(item, item.qty > cart.min) && o.id != item.sku)";
        let expr = CelExpr::compile(source).unwrap();
        let reads: Vec<_> = expr.field_reads().into_iter().collect();
        let expected = [("cart", "min"), ("item", "sku")];
        assert_eq!(reads, expected.map(|(a, f)| (a.to_owned(), f.to_owned())));
        assert_eq!(expr.whole_reads().into_iter().collect::<Vec<_>>(), ["orders"]);
    }

    #[test]
    fn a_jsonpath_reads_its_alias_whole_unless_it_names_a_field_and_filters_nothing() {
        let path = |source| ValueExpr::compile(source).unwrap();
        assert!(!path("$.order.items[0].sku").reads_whole("order"));
        assert!(path("$.order").reads_whole("order"));
        assert!(!path("$.order").reads_whole("cart"));
        assert!(path("$.order.items[?@.sku == $.cart.sku]").reads_whole("cart"));
    }

    #[test]
    fn jsonpath_yields_one_match_or_a_list() {
        let doc = json!({"order": {"items": [{"p": 1}, {"p": 2}]}});
        let scope = base_context();
        let one = ValueExpr::compile("$.order.items[0].p").unwrap();
        assert_eq!(one.eval(&scope, &doc).unwrap(), Some(json!(1)));
        let many = ValueExpr::compile("$.order.items[*].p").unwrap();
        assert_eq!(many.eval(&scope, &doc).unwrap(), Some(json!([1, 2])));
        let none = ValueExpr::compile("$.order.missing").unwrap();
        assert_eq!(none.eval(&scope, &doc).unwrap(), None);
        let path = ValueExpr::compile("$.order[").unwrap_err();
        assert!(matches!(path, ExprError::PathSyntax { .. }), "{path}");
        assert!(path.to_string().starts_with("JSONPath syntax error in `$.order[`"), "{path}");
        let cel = CelExpr::compile("order.total >").unwrap_err();
        assert!(matches!(cel, ExprError::CelSyntax { .. }), "{cel}");
        assert!(cel.to_string().starts_with("CEL syntax error in `order.total >`"), "{cel}");
        let failed = CelExpr::compile("order.missing").unwrap().eval(&scope).unwrap_err();
        assert!(matches!(failed, ExprError::Cel { .. }), "{failed}");
    }

    /// Evaluates `source` with `a` bound to `value`, on a thread with a worker's 2 MiB stack.
    fn on_a_worker_stack(source: String, value: Json) -> Result<Json, String> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let expr = CelExpr::compile(&source).map_err(|e| e.to_string())?;
                let base = base_context();
                let mut scope = base.new_inner_scope();
                scope.add_variable_from_value("a", json_to_cel(&value));
                expr.eval(&scope).map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn the_deepest_expressions_allowed_run_on_a_worker_stack_and_deeper_are_refused() {
        // Each shape holds as many operators as allowed; the parser may refuse some of them
        // (it bounds nested parentheses and calls itself), but none may crash.
        let n = cel_bounds::MAX_OPERATORS;
        let shapes = [
            vec!["a"; n + 1].join(" + "),
            format!("{}a", "!".repeat(n)),
            format!("{}a{}", "(".repeat(n), ")".repeat(n)),
            format!("{}a{}", "[".repeat(n), "]".repeat(n)),
            format!("a{}", ".b".repeat(n)),
            format!("{}a{}", "size(".repeat(n), ")".repeat(n)),
            format!("{}a", "a ? a : ".repeat(n / 2)),
            format!("a{}", " in a".repeat(n)),
        ];
        for shape in shapes {
            let start = &shape[..20];
            // Refused otherwise (by the parser, or as loops nested too deep) it may be.
            if let Err(e) = on_a_worker_stack(shape.clone(), json!("x")) {
                assert!(!e.contains("more than the 512 allowed"), "{start}…: {e}");
            }
            let deeper = format!("!{shape}");
            let refused = on_a_worker_stack(deeper, json!("x")).unwrap_err();
            assert!(refused.contains("more than the 512 allowed"), "{start}…: {refused}");
        }
    }

    #[test]
    fn nested_comprehensions_are_bounded_by_the_lists_they_are_given() {
        let hundred = format!("[{}]", vec!["1"; 101].join(","));
        let three = format!("{hundred}.all(x, {hundred}.all(y, {hundred}.all(z, x == y)))");
        let refused = CelExpr::compile(&three).unwrap_err().to_string();
        assert!(refused.contains("101^3 = 1030301"), "{refused}");
        let four = "a.all(w, a.all(x, a.all(y, a.all(z, true))))";
        let refused = CelExpr::compile(four).unwrap_err().to_string();
        assert!(refused.contains("nests 4 loops"), "{refused}");
        let pairs = "a.items.exists(x, a.items.exists(y, x != y && x == y))";
        let small = json!({"items": (0..100).collect::<Vec<_>>()});
        assert_eq!(on_a_worker_stack(pairs.into(), small), Ok(json!(false)));
        let large = json!({"items": (0..1001).collect::<Vec<_>>()});
        let stopped = on_a_worker_stack(pairs.into(), large.clone()).unwrap_err();
        assert!(stopped.contains("1001^2 = 1002001 iterations"), "{stopped}");
        // `in` scans its list: inside a comprehension, it is a loop in a loop.
        let membership = "a.items.all(x, x in a.items)";
        let stopped = on_a_worker_stack(membership.into(), large).unwrap_err();
        assert!(stopped.contains("1001^2"), "{stopped}");
        // A list computed in the expression could be any length: not looped over when nested.
        let computed = "(a.items + a.items).all(x, a.items.all(y, x == y))";
        let refused = CelExpr::compile(computed).unwrap_err().to_string();
        assert!(refused.contains("over a list it computes"), "{refused}");
        // Nor a literal list of computed lists.
        let wrapped = "[a.items + a.items].all(x, x.all(p, x.exists(q, p == q)))";
        let refused = CelExpr::compile(wrapped).unwrap_err().to_string();
        assert!(refused.contains("over a list it computes"), "{refused}");
        // A computed list scanned once, outside any other loop, is linear: allowed.
        assert!(CelExpr::compile("a.name in a.items.map(i, i.name)").is_ok());
        assert!(CelExpr::compile("(a.items + a.items).exists(x, x == 1)").is_ok());
    }

    #[test]
    fn a_comment_hides_no_operator_from_the_count() {
        let hidden = format!("a // '\n{}// '", "+ a ".repeat(cel_bounds::MAX_OPERATORS + 1));
        let refused = CelExpr::compile(&hidden).unwrap_err().to_string();
        assert!(refused.contains("more than the 512 allowed"), "{refused}");
    }

    #[test]
    fn an_invalid_pattern_literal_is_refused_at_compile() {
        let refused = CelExpr::compile("a.name.matches('[')").unwrap_err().to_string();
        assert!(refused.contains("invalid `matches` pattern"), "{refused}");
        assert!(CelExpr::compile("matches(a.name, '^o[0-9]+$')").is_ok());
    }
}
