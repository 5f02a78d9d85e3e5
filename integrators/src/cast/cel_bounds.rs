//! What a CEL expression may cost, so that nothing a spec holds can exhaust a thread's stack or
//! pin a worker: its size and operators are bounded before it is parsed (they bound the depth
//! of its parse tree), its nested comprehensions when it is compiled, and the work those would
//! do over the lists they are given before each evaluation. A `matches` pattern written as a
//! literal must compile.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::{Context, Value};

/// The longest expression, in bytes.
pub const MAX_BYTES: usize = 4096;

/// The most operator characters (`+-*/%!<>=&|?:`), selections, calls and brackets an
/// expression may hold. Its parse tree is no deeper, which keeps parsing and evaluating it well
/// within a thread's stack (a chain of 1,000 `+` fits in 2 MiB in a debug build).
pub const MAX_OPERATORS: usize = 512;

/// The most loops (comprehensions: `all`, `exists`, `map`, `filter`...; and `in`, which scans
/// its list) nested in one another.
pub const MAX_NESTED_LOOPS: u32 = 3;

/// The most iterations nested comprehensions may run in one evaluation, reckoned as the longest
/// list (or map) they are given raised to their nesting.
pub const MAX_ITERATIONS: f64 = 1_000_000.0;

/// Refuses a source too large to parse safely.
pub fn check_source(source: &str) -> Result<(), String> {
    if source.len() > MAX_BYTES {
        return Err(format!("is {} bytes long, more than the {MAX_BYTES} allowed", source.len()));
    }
    let operators = operators(source);
    if operators > MAX_OPERATORS {
        return Err(format!(
            "holds {operators} operators, selections and brackets, more than the {MAX_OPERATORS} allowed: split it"
        ));
    }
    Ok(())
}

/// The operator characters, dots, opening brackets and `in` keywords outside string literals
/// and comments.
fn operators(source: &str) -> usize {
    let bytes = source.as_bytes();
    let (mut count, mut i) = (0, 0);
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |end| i + end);
                continue;
            }
            b'i' if bytes[i..].starts_with(b"in")
                && (i == 0 || !word(bytes[i - 1]))
                && bytes.get(i + 2).is_none_or(|&b| !word(b)) =>
            {
                count += 1;
            }
            quote @ (b'"' | b'\'') => {
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                let triple = bytes[i..].starts_with(&[quote; 3]);
                let close: &[u8] = if triple { &[quote; 3] } else { &[quote] };
                i += close.len();
                while i < bytes.len() && !bytes[i..].starts_with(close) {
                    i += if bytes[i] == b'\\' && !raw { 2 } else { 1 };
                }
                i += close.len();
                continue;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'<' | b'>' | b'=' | b'&' | b'|' | b'?'
            | b':' | b'.' | b'(' | b'[' | b'{' => count += 1,
            _ => {}
        }
        i += 1;
    }
    count
}

/// A compiled expression's comprehensions: how deeply they nest, and what bounds their work.
#[derive(Debug)]
pub struct Loops {
    /// The deepest nesting of comprehensions (0: none).
    depth: u32,
    /// The longest list or map written in the expression.
    longest_literal: usize,
    /// The identifiers the expression reads, to measure the lists they hold.
    reads: Vec<IdedExpr>,
}

impl Loops {
    /// The comprehensions of `ast`, refused when they nest too deeply or provably run too long
    /// over the lists written in the expression.
    pub fn of(ast: &IdedExpr, reads: impl IntoIterator<Item = String>) -> Result<Loops, String> {
        let depth = loop_depth(ast);
        if depth > MAX_NESTED_LOOPS {
            return Err(format!(
                "nests {depth} loops (comprehensions, `in`), more than the {MAX_NESTED_LOOPS} allowed"
            ));
        }
        if depth >= 2 && !loops_over_given_lists(ast, false) {
            return Err(
                "nests loops, one of them over a list it computes: loop over a field or a literal list"
                    .into(),
            );
        }
        let longest_literal = longest_literal(ast);
        let reads = reads.into_iter().map(|name| IdedExpr { id: 0, expr: Expr::Ident(name) });
        let loops = Loops { depth, longest_literal, reads: reads.collect() };
        loops.within(longest_literal)?;
        Ok(loops)
    }

    /// Refuses an evaluation in `scope` whose nested loops would run too long over the lists it
    /// is given. Free for an expression with one level of loops at most: its work is linear in
    /// what it reads.
    pub fn check_inputs(&self, scope: &Context<'_, '_>) -> Result<(), String> {
        if self.depth < 2 {
            return Ok(());
        }
        let longest = self
            .reads
            .iter()
            .filter_map(|read| scope.resolve(read).ok())
            .map(|value| longest_in(&value))
            .fold(self.longest_literal, usize::max);
        self.within(longest)
    }

    fn within(&self, longest: usize) -> Result<(), String> {
        let iterations = (longest as f64).powi(self.depth as i32);
        if self.depth >= 2 && iterations > MAX_ITERATIONS {
            return Err(format!(
                "would run up to {longest}^{} = {iterations:.0} iterations, more than the {MAX_ITERATIONS} allowed",
                self.depth
            ));
        }
        Ok(())
    }
}

/// Refuses a `matches` whose pattern is a literal that is not a valid regular expression.
pub fn check_patterns(ast: &IdedExpr) -> Result<(), String> {
    if let Expr::Call(call) = &ast.expr
        && call.func_name == "matches"
        && let Some(IdedExpr { expr: Expr::Literal(LiteralValue::String(pattern)), .. }) =
            call.args.last()
        && let Err(error) = regex::Regex::new(pattern)
    {
        return Err(format!("has an invalid `matches` pattern: {error}"));
    }
    children(ast).into_iter().try_for_each(check_patterns)
}

/// How deeply loops nest in `node`: comprehensions, and `in`, which scans its list. A
/// comprehension's range and initial value run once, its condition, step and result once per
/// element.
fn loop_depth(node: &IdedExpr) -> u32 {
    match &node.expr {
        Expr::Comprehension(c) => {
            let once = loop_depth(&c.iter_range).max(loop_depth(&c.accu_init));
            let each = [&c.loop_cond, &c.loop_step, &c.result].map(loop_depth);
            once.max(1 + each.into_iter().max().unwrap_or(0))
        }
        // Its operands run once; the scan is one loop.
        Expr::Call(call) if call.func_name == operators::IN => {
            children(node).into_iter().map(loop_depth).max().unwrap_or(0).max(1)
        }
        _ => children(node).into_iter().map(loop_depth).max().unwrap_or(0),
    }
}

/// Whether every loop in `node` that nests with another (inside one's per-element part, or
/// holding one in its own, when `inside` a loop already) goes over a list it is given or
/// writes: a field (`a.b.c`), a variable, or a literal of such. The bound on nested loops
/// reckons with those lists only.
fn loops_over_given_lists(node: &IdedExpr, inside: bool) -> bool {
    match &node.expr {
        Expr::Comprehension(c) => {
            let each = [&c.loop_cond, &c.loop_step, &c.result];
            let nests = inside || each.iter().any(|part| loop_depth(part) > 0);
            (!nests || given(&c.iter_range))
                && loops_over_given_lists(&c.iter_range, inside)
                && loops_over_given_lists(&c.accu_init, inside)
                && each.into_iter().all(|part| loops_over_given_lists(part, true))
        }
        Expr::Call(call) if call.func_name == operators::IN => {
            call.args.last().is_none_or(|list| !inside || given(list))
                && children(node).into_iter().all(|child| loops_over_given_lists(child, inside))
        }
        _ => children(node).into_iter().all(|child| loops_over_given_lists(child, inside)),
    }
}

/// Whether `node` is a variable, a field of one, a literal value, or a literal list or map of
/// those.
fn given(node: &IdedExpr) -> bool {
    match &node.expr {
        Expr::Ident(_) | Expr::Literal(_) => true,
        Expr::Select(select) => !select.test && given(&select.operand),
        Expr::List(list) => list.elements.iter().all(given),
        Expr::Map(map) => {
            map.entries.iter().all(|e| entry_children(&e.expr).into_iter().all(given))
        }
        _ => false,
    }
}

/// The longest list or map literal in `node`.
fn longest_literal(node: &IdedExpr) -> usize {
    let own = match &node.expr {
        Expr::List(list) => list.elements.len(),
        Expr::Map(map) => map.entries.len(),
        _ => 0,
    };
    children(node).into_iter().map(longest_literal).fold(own, usize::max)
}

/// The longest list or map in `value`, at any depth.
fn longest_in(value: &Value) -> usize {
    match value {
        Value::List(items) => items.iter().map(longest_in).fold(items.len(), usize::max),
        Value::Map(map) => map.map.values().map(longest_in).fold(map.map.len(), usize::max),
        _ => 0,
    }
}

/// The direct children of `node`.
pub(crate) fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(&call.args).collect(),
        Expr::Select(select) => vec![&*select.operand],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Expr::Struct(s) => s.entries.iter().flat_map(|e| entry_children(&e.expr)).collect(),
        Expr::Comprehension(c) => {
            vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
    match entry {
        EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_counted_outside_string_literals() {
        assert_eq!(operators("a.b + c[0] && f(x)"), 6);
        assert_eq!(operators(r#"a == "x+y.z" || b == 'it\'s (a) test'"#), 6);
        assert_eq!(operators(r#"a == """+++""" && r'\' == b"#), 6);
        assert_eq!(
            operators("a // ' + + +\n + b in c && index"),
            4,
            "comments skipped, `in` counted"
        );
    }

    #[test]
    fn a_source_too_long_or_too_deep_is_refused_before_parsing() {
        let long = format!("'{}'", "x".repeat(MAX_BYTES));
        assert!(check_source(&long).unwrap_err().contains("4098 bytes long"));
        let deep = vec!["a"; MAX_OPERATORS + 2].join("+");
        assert!(check_source(&deep).unwrap_err().contains("513 operators"));
        assert!(check_source(&vec!["a"; MAX_OPERATORS + 1].join("+")).is_ok());
    }
}
