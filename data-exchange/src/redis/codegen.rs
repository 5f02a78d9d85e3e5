//! Edges compiled to Lua: the `key` and `patch` functions the library's `edge` registers,
//! calling the operators of its `C` table (lua/cel.lua).
//!
//! What does not change from one evaluation to the next is made once, when the library loads,
//! and kept in the table `H`: the operands CEL evaluates lazily (of `&&`, `||` and `?:`), as
//! functions of the call's `key` and `b`, and the paths of JSONPaths and nested `set`s.
//! Evaluating the edge then allocates no closure and no path. The code calls the library's
//! operators exactly as the previous version did, so its library runs these edges too, and
//! this version's library runs the edges the previous version pushed down.

use std::cell::RefCell;

use crate::edge::{BinaryOp, Edge, Expr, Index, Literal, Path, Step, UnaryOp};

/// `function(key, b) ... end`: the target object's name, given the written object's name
/// (`key`) and the table of the sources' data (`b`).
pub(super) fn key_function(edge: &Edge) -> String {
    match edge.key() {
        Some(key) => {
            let lua = Function::default();
            let body = format!("return {}\n", lua.expr(key));
            lua.finish(&body)
        }
        None => "function(key, b) return key end".to_owned(),
    }
}

/// `function(key, b) ... end`: the fields to merge into the target (a table), or `nil` when
/// the edge's condition does not hold.
pub(super) fn patch_function(edge: &Edge) -> String {
    let lua = Function::default();
    let mut body = String::new();
    if let Some(when) = edge.when() {
        body.push_str(&format!("if not C.when({}) then return nil end\n", lua.expr(when)));
    }
    body.push_str("local patch = {}\n");
    for (path, value) in edge.set() {
        let value = lua.expr(value);
        let path: Vec<String> = path.iter().map(|p| lua_string(p)).collect();
        body.push_str(&match path.as_slice() {
            [field] => {
                format!("do local v = {value} if v ~= nil then patch[{field}] = v end end\n")
            }
            _ => format!(
                "C.set(patch, {}, {value})\n",
                lua.hoist(format!("{{{}}}", path.join(", ")))
            ),
        });
    }
    body.push_str("return patch\n");
    lua.finish(&body)
}

/// One function of an edge under construction, with the values it hoists into `H`.
#[derive(Default)]
struct Function {
    /// The values made once, `H[1]` first.
    hoisted: RefCell<Vec<String>>,
}

impl Function {
    /// `H[n]`, holding `value`.
    fn hoist(&self, value: String) -> String {
        let mut hoisted = self.hoisted.borrow_mut();
        hoisted.push(value);
        format!("H[{}]", hoisted.len())
    }

    /// `function(key, b) <body> end`, with the values it hoisted.
    fn finish(self, body: &str) -> String {
        let hoisted = self.hoisted.into_inner();
        if hoisted.is_empty() {
            return format!("function(key, b)\n{body}end");
        }
        let mut out = String::from("(function()\nlocal key, b\nlocal H = {}\n");
        for (n, value) in hoisted.iter().enumerate() {
            out.push_str(&format!("H[{}] = {value}\n", n + 1));
        }
        out.push_str(&format!("return function(...)\nkey, b = ...\n{body}end\nend)()"));
        out
    }

    /// `expr` evaluated lazily: a hoisted function returning it.
    fn lazy(&self, expr: &Expr) -> String {
        let lua = self.expr(expr);
        self.hoist(format!("function() return {lua} end"))
    }

    fn expr(&self, expr: &Expr) -> String {
        match expr {
            Expr::Alias(alias) => format!("b[{}]", lua_string(alias)),
            Expr::Key => "key".into(),
            Expr::Select(operand, field) => {
                format!("C.select({}, {})", self.expr(operand), lua_string(field))
            }
            Expr::Has(operand, field) => {
                format!("C.has({}, {})", self.expr(operand), lua_string(field))
            }
            Expr::Literal(literal) => match literal {
                Literal::Bool(b) => b.to_string(),
                Literal::Double(d) => format!("({d:?})"),
                Literal::String(s) => lua_string(s),
                Literal::Null => "C.NULL".into(),
            },
            Expr::List(items) => {
                let items: Vec<String> = items.iter().map(|e| self.expr(e)).collect();
                format!("C.array({{{}}})", items.join(", "))
            }
            Expr::Map(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(key, value)| format!("[{}] = {}", lua_string(key), self.expr(value)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            Expr::And(a, b) => format!("C.and_({}, {})", self.lazy(a), self.lazy(b)),
            Expr::Or(a, b) => format!("C.or_({}, {})", self.lazy(a), self.lazy(b)),
            Expr::Cond(condition, then, otherwise) => {
                let condition = self.expr(condition);
                format!("C.cond({condition}, {}, {})", self.lazy(then), self.lazy(otherwise))
            }
            Expr::Index(value, index) => {
                let index = match index {
                    Index::Position(n) => n.to_string(),
                    Index::Key(key) => lua_string(key),
                };
                format!("C.index({}, {index})", self.expr(value))
            }
            Expr::Unary(op, operand) => {
                let op = match op {
                    UnaryOp::Not => "not_",
                    UnaryOp::Neg => "neg",
                };
                format!("C.{op}({})", self.expr(operand))
            }
            Expr::Binary(op, a, b) => {
                format!("C.{}({}, {})", binary(*op), self.expr(a), self.expr(b))
            }
            Expr::Path(path) => self.path(path),
        }
    }

    /// `C.path(b[alias], H[n])`, with the steps hoisted.
    fn path(&self, path: &Path) -> String {
        let steps: Vec<String> = path
            .steps
            .iter()
            .map(|step| match step {
                Step::Field(field) => lua_string(field),
                Step::Index(n) => n.to_string(),
            })
            .collect();
        let steps = self.hoist(format!("{{{}}}", steps.join(", ")));
        format!("C.path(b[{}], {steps})", lua_string(&path.alias))
    }
}

/// The name of the library's function for `op`.
fn binary(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::Eq => "eq",
        BinaryOp::Ne => "ne",
        BinaryOp::Lt => "lt",
        BinaryOp::Le => "le",
        BinaryOp::Gt => "gt",
        BinaryOp::Ge => "ge",
    }
}

/// `s` as a Lua string literal: printable ASCII as is, every other byte as `\ddd`.
pub(super) fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for byte in s.bytes() {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(byte as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(field: &str) -> Expr {
        Expr::Select(Box::new(Expr::Alias("order".into())), field.into())
    }

    fn string(s: &str) -> Box<Expr> {
        Box::new(Expr::Literal(Literal::String(s.into())))
    }

    /// `has(order.paymentID) && order.status == "placed"`, setting `items` to
    /// `$.order.items[0].sku` and `method` to `order.total > 100 ? "air" : "ground"`.
    fn edge() -> Edge {
        let shipments = "shipping/shipments".parse().unwrap();
        let sources = vec![("order".to_owned(), "checkout/orders".parse().unwrap())];
        let paid = Expr::Has(Box::new(Expr::Alias("order".into())), "paymentID".into());
        let placed = Expr::Binary(BinaryOp::Eq, Box::new(order("status")), string("placed"));
        let items = Expr::Path(Path {
            alias: "order".into(),
            steps: vec![Step::Field("items".into()), Step::Index(0), Step::Field("sku".into())],
        });
        let big = Expr::Binary(
            BinaryOp::Gt,
            Box::new(order("total")),
            Box::new(Expr::Literal(Literal::Double(100.0))),
        );
        let method = Expr::Cond(Box::new(big), string("air"), string("ground"));
        Edge::new("t/e", sources, shipments)
            .and_then(|e| e.with_when(Expr::And(Box::new(paid), Box::new(placed))))
            .and_then(|e| e.with_set(vec!["items".into()], items))
            .and_then(|e| e.with_set(vec!["method".into()], method))
            .unwrap()
    }

    #[test]
    fn edges_compile_to_the_lua_the_previous_version_generated() {
        assert_eq!(key_function(&edge()), "function(key, b) return key end");
        let expected = r#"(function()
local key, b
local H = {}
H[1] = function() return C.has(b["order"], "paymentID") end
H[2] = function() return C.eq(C.select(b["order"], "status"), "placed") end
H[3] = {"items", 0, "sku"}
H[4] = function() return "air" end
H[5] = function() return "ground" end
return function(...)
key, b = ...
if not C.when(C.and_(H[1], H[2])) then return nil end
local patch = {}
do local v = C.path(b["order"], H[3]) if v ~= nil then patch["items"] = v end end
do local v = C.cond(C.gt(C.select(b["order"], "total"), (100.0)), H[4], H[5]) if v ~= nil then patch["method"] = v end end
return patch
end
end)()"#;
        assert_eq!(patch_function(&edge()), expected);
    }

    #[test]
    fn keys_nested_fields_and_constants_compile_in_order() {
        let sources = vec![("order".to_owned(), "checkout/orders".parse().unwrap())];
        let name = Expr::Binary(BinaryOp::Add, string("s-"), Box::new(Expr::Key));
        let list = Expr::List(vec![
            Expr::Literal(Literal::Null),
            Expr::Literal(Literal::Bool(true)),
            Expr::Index(Box::new(order("items")), Index::Position(2)),
        ]);
        let map = Expr::Map(vec![
            ("x".into(), Expr::Unary(UnaryOp::Neg, Box::new(order("total")))),
            (
                "y".into(),
                Expr::Index(Box::new(Expr::Alias("order".into())), Index::Key("k".into())),
            ),
        ]);
        let edge = Edge::new("t/k", sources, "shipping/shipments".parse().unwrap())
            .and_then(|e| e.with_key(name))
            .and_then(|e| e.with_set(vec!["a".into(), "b".into()], list))
            .and_then(|e| e.with_set(vec!["m".into()], map))
            .unwrap();
        assert_eq!(key_function(&edge), "function(key, b)\nreturn C.add(\"s-\", key)\nend");
        let patch = patch_function(&edge);
        for expected in [
            r#"H[1] = {"a", "b"}"#,
            r#"C.set(patch, H[1], C.array({C.NULL, true, C.index(C.select(b["order"], "items"), 2)}))"#,
            r#"patch["m"] = v"#,
            r#"{["x"] = C.neg(C.select(b["order"], "total")), ["y"] = C.index(b["order"], "k")}"#,
        ] {
            assert!(patch.contains(expected), "{expected} is not in\n{patch}");
        }
    }

    #[test]
    fn lua_strings_escape_quotes_and_bytes() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lua_string("é\n"), r#""\195\169\010""#);
    }
}
