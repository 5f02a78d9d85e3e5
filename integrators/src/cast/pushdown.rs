//! Pushdown: compiling a Cast edge to Lua, for an exchange that runs it inside the writes of
//! its source store (see `data_exchange::pushdown`).
//!
//! An edge compiles when it reads only its `from` objects (no `collect` input) and `key`, and
//! its expressions are simple: field reads and `has()`, literals, lists and maps, `+ - * /`, comparisons, `!`,
//! `&&`, `||`, ternaries, constant indexes, and plain JSONPaths (`$.order.items[0].sku`). The
//! Lua calls the operators of the library's `C` table, which behave as the `cel` crate does
//! with every number a double; the golden Cast cases run both ways to hold them to that.
//! Anything else keeps the edge in the integrator, with the reason.

use std::cell::RefCell;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use data_exchange::PushedEdge;
use data_exchange::pushdown::lua_string;

use super::expr::{CelExpr, ValueExpr};
use super::plan::{CastPlan, EdgePlan};
use super::spec::OnDelete;

/// Compiles `edge` of `plan` to Lua; else says why it cannot be.
pub fn compile(plan: &CastPlan, edge: &EdgePlan) -> Result<PushedEdge, String> {
    let from = &edge.spec.from;
    if let Some(alias) = from.iter().find(|alias| plan.inputs[*alias].collect) {
        return Err(format!("it reads the collect input `{alias}`"));
    }
    if let Some(other) = edge.reads.iter().find(|r| !from.contains(r) && *r != "key") {
        return Err(format!("it reads `{other}`, which is not one of its `from` objects"));
    }
    let key = match &edge.key {
        Some(key) => {
            let lua = Lua::new(from);
            let body = format!("return {}\n", lua.cel(key)?);
            lua.function(&body)
        }
        None => "function(key, b) return key end".to_owned(),
    };
    let lua = Lua::new(from);
    let mut body = String::new();
    if let Some(when) = &edge.when {
        body.push_str(&format!("if not C.when({}) then return nil end\n", lua.cel(when)?));
    }
    body.push_str("local patch = {}\n");
    for (path, value) in &edge.set {
        let value = match value {
            ValueExpr::Cel(cel) => lua.cel(cel)?,
            ValueExpr::Path(path) => lua.path(path)?,
        };
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
    let patch = lua.function(&body);
    Ok(PushedEdge {
        // Unique in the exchange: `<cast>/<edge>`.
        name: format!("{}/{}", plan.name, edge.spec.name),
        sources: from.iter().map(|a| (a.clone(), plan.inputs[a].store.clone())).collect(),
        target: plan.inputs[&edge.spec.to].store.clone(),
        fields: edge.set.iter().map(|(path, _)| path[0].clone()).collect(),
        cascade: edge.spec.on_delete == OnDelete::Cascade,
        key,
        patch,
    })
}

/// Lua for the expressions of one function of an edge, whose `from` objects are bound in the
/// table `b`.
///
/// What does not change from one evaluation to the next is made once, when the library loads,
/// and kept in the table `H`: the operands CEL evaluates lazily (of `&&`, `||` and `?:`), as
/// functions of the call's `key` and `b`, and the paths of JSONPaths and nested `set`s.
/// Evaluating the edge then allocates no closure and no path. The library's operators are
/// called as the previous version called them, so its library runs these edges too.
struct Lua<'a> {
    from: &'a [String],
    /// The values made once, `H[1]` first.
    hoisted: RefCell<Vec<String>>,
}

impl<'a> Lua<'a> {
    fn new(from: &'a [String]) -> Self {
        Lua { from, hoisted: RefCell::default() }
    }

    /// `H[n]`, holding `value`.
    fn hoist(&self, value: String) -> String {
        let mut hoisted = self.hoisted.borrow_mut();
        hoisted.push(value);
        format!("H[{}]", hoisted.len())
    }

    /// `function(key, b) <body> end`, with the values it hoisted.
    fn function(self, body: &str) -> String {
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

    fn cel(&self, expr: &CelExpr) -> Result<String, String> {
        self.expr(expr.ast()).map_err(|why| format!("`{}` {why}", expr.source()))
    }

    fn expr(&self, node: &IdedExpr) -> Result<String, String> {
        match &node.expr {
            Expr::Ident(name) if self.from.contains(name) => Ok(format!("b[{}]", lua_string(name))),
            Expr::Ident(name) if name == "key" => Ok("key".into()),
            Expr::Ident(name) => Err(format!("reads `{name}`")),
            Expr::Select(select) => {
                let operand = self.expr(&select.operand)?;
                let op = if select.test { "has" } else { "select" };
                Ok(format!("C.{op}({operand}, {})", lua_string(&select.field)))
            }
            Expr::Literal(literal) => match literal {
                LiteralValue::Boolean(b) => Ok(b.inner().to_string()),
                LiteralValue::Double(d) => Ok(format!("({:?})", d.inner())),
                LiteralValue::String(s) => Ok(lua_string(s.inner())),
                LiteralValue::Null => Ok("C.NULL".into()),
                _ => Err("has a literal of a type other than double, string, bool or null".into()),
            },
            Expr::List(list) => {
                let items: Result<Vec<_>, _> = list.elements.iter().map(|e| self.expr(e)).collect();
                Ok(format!("C.array({{{}}})", items?.join(", ")))
            }
            Expr::Map(map) => {
                let mut entries = Vec::new();
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return Err("builds a message".into());
                    };
                    let Expr::Literal(LiteralValue::String(key)) = &entry.key.expr else {
                        return Err("builds a map with a key that is not a string literal".into());
                    };
                    if entry.optional {
                        return Err("builds a map with an optional entry".into());
                    }
                    entries.push(format!(
                        "[{}] = {}",
                        lua_string(key.inner()),
                        self.expr(&entry.value)?
                    ));
                }
                Ok(format!("{{{}}}", entries.join(", ")))
            }
            Expr::Call(call) if call.target.is_none() => self.call(&call.func_name, &call.args),
            Expr::Call(call) => Err(format!("calls the method `{}`", call.func_name)),
            Expr::Comprehension(_) => Err("uses a macro (`all`, `map`, ...)".into()),
            Expr::Struct(_) | Expr::Unspecified => Err("builds a message".into()),
        }
    }

    fn call(&self, function: &str, args: &[IdedExpr]) -> Result<String, String> {
        let lazy = |e: &IdedExpr| {
            let lua = self.expr(e)?;
            Ok::<_, String>(self.hoist(format!("function() return {lua} end")))
        };
        let operator = match (function, args) {
            ("_&&_", [a, b]) => return Ok(format!("C.and_({}, {})", lazy(a)?, lazy(b)?)),
            ("_||_", [a, b]) => return Ok(format!("C.or_({}, {})", lazy(a)?, lazy(b)?)),
            ("_?_:_", [c, a, b]) => {
                let (c, a, b) = (self.expr(c)?, lazy(a)?, lazy(b)?);
                return Ok(format!("C.cond({c}, {a}, {b})"));
            }
            ("_[_]", [value, index]) => {
                let index = match &index.expr {
                    Expr::Literal(LiteralValue::Int(i)) if *i.inner() >= 0 => i.inner().to_string(),
                    Expr::Literal(LiteralValue::String(s)) => lua_string(s.inner()),
                    _ => return Err("indexes with something other than a constant".into()),
                };
                return Ok(format!("C.index({}, {index})", self.expr(value)?));
            }
            ("!_", [_]) => "not_",
            ("-_", [_]) => "neg",
            ("_+_", [_, _]) => "add",
            ("_-_", [_, _]) => "sub",
            ("_*_", [_, _]) => "mul",
            ("_/_", [_, _]) => "div",
            ("_==_", [_, _]) => "eq",
            ("_!=_", [_, _]) => "ne",
            ("_<_", [_, _]) => "lt",
            ("_<=_", [_, _]) => "le",
            ("_>_", [_, _]) => "gt",
            ("_>=_", [_, _]) => "ge",
            _ => return Err(format!("calls `{function}`")),
        };
        let args: Result<Vec<_>, _> = args.iter().map(|a| self.expr(a)).collect();
        Ok(format!("C.{operator}({})", args?.join(", ")))
    }

    /// A plain JSONPath of a `from` object: `$.alias` then `.field`s and `[n]`s.
    fn path(&self, path: &str) -> Result<String, String> {
        let not_plain = || format!("`{path}` is not a plain path of a `from` object");
        let rest = path.trim().strip_prefix("$.").ok_or_else(not_plain)?;
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let alias = &rest[..end];
        if !self.from.iter().any(|a| a == alias) {
            return Err(not_plain());
        }
        let rest = &rest[end..];
        let mut steps = Vec::new();
        let mut chars = rest;
        while !chars.is_empty() {
            if let Some(after) = chars.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let field = &after[..end];
                let plain = !field.is_empty()
                    && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !plain {
                    return Err(not_plain());
                }
                steps.push(lua_string(field));
                chars = &after[end..];
            } else if let Some(after) = chars.strip_prefix('[') {
                let end = after.find(']').ok_or_else(not_plain)?;
                let index: u32 = after[..end].parse().map_err(|_| not_plain())?;
                steps.push(index.to_string());
                chars = &after[end + 1..];
            } else {
                return Err(not_plain());
            }
        }
        let steps = self.hoist(format!("{{{}}}", steps.join(", ")));
        Ok(format!("C.path(b[{}], {steps})", lua_string(alias)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SpecFile;

    fn plan(edges: &str) -> CastPlan {
        let text = format!(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: t}}\nspec:\n  inputs:\n    order: checkout/orders\n    shipment: shipping/shipments\n    all: {{store: shipping/shipments, collect: true}}\n  edges:\n{edges}"
        );
        CastPlan::load(&SpecFile::from_text(std::path::Path::new("t.yaml"), text), None).unwrap().0
    }

    fn compiled(edges: &str) -> Result<PushedEdge, String> {
        let plan = plan(edges);
        compile(&plan, &plan.edges[0])
    }

    #[test]
    fn simple_edges_compile_to_lua() {
        let edge = compiled(
            r#"    - name: e
      from: [order]
      to: shipment
      when: has(order.paymentID) && order.status == "placed"
      set:
        items: $.order.items[0].sku
        method: 'order.total > 100 ? "air" : "ground"'
"#,
        )
        .unwrap();
        assert_eq!(edge.name, "t/e");
        assert_eq!(edge.key, "function(key, b) return key end");
        let patch = &edge.patch;
        for expected in [
            r#"H[1] = function() return C.has(b["order"], "paymentID") end"#,
            "C.when(C.and_(H[1], H[2]))",
            r#"H[3] = {"items", 0, "sku"}"#,
            r#"C.path(b["order"], H[3])"#,
            r#"C.cond(C.gt(C.select(b["order"], "total"), (100.0)), H[4], H[5])"#,
            "return function(...)\nkey, b = ...\n",
        ] {
            assert!(patch.contains(expected), "{expected} is not in\n{patch}");
        }
    }

    #[test]
    fn other_edges_say_why_they_stay_in_the_integrator() {
        let why = |edges: &str| compiled(edges).unwrap_err();
        let macro_ = "    - {name: e, from: [order], to: shipment, set: {cost: 'sum(order.items.map(i, i.price))'}}\n";
        assert!(why(macro_).contains("calls `sum`"), "{}", why(macro_));
        let all = "    - {name: e, from: [order], to: shipment, set: {ok: 'order.items.all(i, i.price > 0)'}}\n";
        assert!(why(all).contains("macro"), "{}", why(all));
        let collect =
            "    - {name: e, from: [order, all], to: shipment, set: {cost: order.total}}\n";
        assert!(why(collect).contains("collect input `all`"), "{}", why(collect));
        let wildcard =
            "    - {name: e, from: [order], to: shipment, set: {items: '$.order.items[*].sku'}}\n";
        assert!(why(wildcard).contains("not a plain path"), "{}", why(wildcard));
    }
}
