//! Pushdown: a Cast edge described for an exchange that runs edges itself, inside the writes
//! of their source store (a [`data_exchange::EdgeRunner`]).
//!
//! An edge translates to a [`data_exchange::Edge`] when it reads only its `from` objects (no
//! `collect` input) and `key`, and its expressions are simple: field reads and `has()`,
//! literals, lists and maps, `+ - * /`, comparisons, `!`, `&&`, `||`, ternaries, constant
//! indexes, and plain JSONPaths (`$.order.items[0].sku`). Anything else keeps the edge in the
//! integrator, with the reason ([`PushdownError`]).

use cel::common::ast::{EntryExpr, Expr as Cel, IdedExpr, LiteralValue};
use data_exchange::Edge;
use data_exchange::edge::{BinaryOp, Expr, Index, InvalidEdge, Literal, UnaryOp};

use super::expr::{CelExpr, ValueExpr};
use super::jsonpath::JsonPathExpr;
use super::plan::{CastPlan, EdgePlan};
use super::spec::OnDelete;

/// Why an edge stays in the integrator.
#[derive(Debug, thiserror::Error)]
pub enum PushdownError {
    /// It reads a `collect` input.
    #[error("it reads the collect input `{0}`")]
    CollectInput(String),
    /// It reads an alias that is not one of its `from` objects.
    #[error("it reads `{0}`, which is not one of its `from` objects")]
    NotFrom(String),
    /// A CEL expression uses what an exchange does not run.
    #[error("`{expr}` {reason}")]
    Cel {
        /// The expression as written.
        expr: String,
        /// What it uses.
        reason: Unsupported,
    },
    /// A JSONPath is not `$.<from alias>` followed by field names and list positions.
    #[error("`{0}` is not a plain path of a `from` object")]
    NotPlainPath(String),
    /// The description does not hold together (a bug: the plan was checked).
    #[error(transparent)]
    Invalid(#[from] InvalidEdge),
}

/// What a CEL expression uses that an exchange does not run.
#[derive(Debug, thiserror::Error)]
pub enum Unsupported {
    /// An identifier other than a `from` alias and `key`.
    #[error("reads `{0}`")]
    Reads(String),
    /// An integer, unsigned or bytes literal.
    #[error("has a literal of a type other than double, string, bool or null")]
    Literal,
    /// A message (struct) construction.
    #[error("builds a message")]
    Message,
    /// A map key that is not a string literal.
    #[error("builds a map with a key that is not a string literal")]
    MapKey,
    /// An optional map entry.
    #[error("builds a map with an optional entry")]
    OptionalEntry,
    /// A method call (`x.f()`).
    #[error("calls the method `{0}`")]
    Method(String),
    /// A macro (a comprehension).
    #[error("uses a macro (`all`, `map`, ...)")]
    Macro,
    /// An index that is not a constant.
    #[error("indexes with something other than a constant")]
    Index,
    /// A function other than the operators.
    #[error("calls `{0}`")]
    Calls(String),
}

/// Describes `edge` of `plan` for an exchange that runs edges; else says why it cannot be.
pub fn describe(plan: &CastPlan, edge: &EdgePlan) -> Result<Edge, PushdownError> {
    let from = &edge.spec.from;
    if let Some(alias) = from.iter().find(|alias| plan.inputs[*alias].collect) {
        return Err(PushdownError::CollectInput(alias.clone()));
    }
    if let Some(other) = edge.reads.iter().find(|r| !from.contains(r) && *r != "key") {
        return Err(PushdownError::NotFrom(other.clone()));
    }
    let translate = Translate { from };
    let sources = from.iter().map(|a| (a.clone(), plan.inputs[a].store.clone())).collect();
    let target = plan.inputs[&edge.spec.to].store.clone();
    // Unique in the exchange: `<cast>/<edge>`.
    let name = format!("{}/{}", plan.name, edge.spec.name);
    let mut described =
        Edge::new(name, sources, target)?.with_cascade(edge.spec.on_delete == OnDelete::Cascade);
    if let Some(key) = &edge.key {
        described = described.with_key(translate.cel(key)?)?;
    }
    if let Some(when) = &edge.when {
        described = described.with_when(translate.cel(when)?)?;
    }
    for (path, value) in &edge.set {
        let value = match value {
            ValueExpr::Cel(cel) => translate.cel(cel)?,
            ValueExpr::Path(path) => translate.path(path)?,
        };
        described = described.with_set(path.clone(), value)?;
    }
    Ok(described)
}

/// Translates the expressions of an edge whose `from` aliases are `from`.
struct Translate<'a> {
    from: &'a [String],
}

impl Translate<'_> {
    fn cel(&self, expr: &CelExpr) -> Result<Expr, PushdownError> {
        self.expr(expr.ast())
            .map_err(|reason| PushdownError::Cel { expr: expr.source().to_owned(), reason })
    }

    fn expr(&self, node: &IdedExpr) -> Result<Expr, Unsupported> {
        match &node.expr {
            Cel::Ident(name) if self.from.contains(name) => Ok(Expr::Alias(name.clone())),
            Cel::Ident(name) if name == "key" => Ok(Expr::Key),
            Cel::Ident(name) => Err(Unsupported::Reads(name.clone())),
            Cel::Select(select) => {
                let operand = Box::new(self.expr(&select.operand)?);
                let field = select.field.clone();
                Ok(if select.test {
                    Expr::Has(operand, field)
                } else {
                    Expr::Select(operand, field)
                })
            }
            Cel::Literal(literal) => Ok(Expr::Literal(match literal {
                LiteralValue::Boolean(b) => Literal::Bool(*b.inner()),
                LiteralValue::Double(d) => Literal::Double(*d.inner()),
                LiteralValue::String(s) => Literal::String(s.inner().to_owned()),
                LiteralValue::Null => Literal::Null,
                _ => return Err(Unsupported::Literal),
            })),
            Cel::List(list) => {
                let items: Result<Vec<_>, _> = list.elements.iter().map(|e| self.expr(e)).collect();
                Ok(Expr::List(items?))
            }
            Cel::Map(map) => {
                let mut entries = Vec::new();
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return Err(Unsupported::Message);
                    };
                    let Cel::Literal(LiteralValue::String(key)) = &entry.key.expr else {
                        return Err(Unsupported::MapKey);
                    };
                    if entry.optional {
                        return Err(Unsupported::OptionalEntry);
                    }
                    entries.push((key.inner().to_owned(), self.expr(&entry.value)?));
                }
                Ok(Expr::Map(entries))
            }
            Cel::Call(call) if call.target.is_none() => self.call(&call.func_name, &call.args),
            Cel::Call(call) => Err(Unsupported::Method(call.func_name.clone())),
            Cel::Comprehension(_) => Err(Unsupported::Macro),
            Cel::Struct(_) | Cel::Unspecified => Err(Unsupported::Message),
        }
    }

    fn call(&self, function: &str, args: &[IdedExpr]) -> Result<Expr, Unsupported> {
        let boxed = |e: &IdedExpr| self.expr(e).map(Box::new);
        let op = match (function, args) {
            ("_&&_", [a, b]) => return Ok(Expr::And(boxed(a)?, boxed(b)?)),
            ("_||_", [a, b]) => return Ok(Expr::Or(boxed(a)?, boxed(b)?)),
            ("_?_:_", [c, a, b]) => return Ok(Expr::Cond(boxed(c)?, boxed(a)?, boxed(b)?)),
            ("_[_]", [value, index]) => {
                let index = match &index.expr {
                    Cel::Literal(LiteralValue::Int(i)) => {
                        Index::Position(u64::try_from(*i.inner()).map_err(|_| Unsupported::Index)?)
                    }
                    Cel::Literal(LiteralValue::String(s)) => Index::Key(s.inner().to_owned()),
                    _ => return Err(Unsupported::Index),
                };
                return Ok(Expr::Index(boxed(value)?, index));
            }
            ("!_", [a]) => return Ok(Expr::Unary(UnaryOp::Not, boxed(a)?)),
            ("-_", [a]) => return Ok(Expr::Unary(UnaryOp::Neg, boxed(a)?)),
            ("_+_", [_, _]) => BinaryOp::Add,
            ("_-_", [_, _]) => BinaryOp::Sub,
            ("_*_", [_, _]) => BinaryOp::Mul,
            ("_/_", [_, _]) => BinaryOp::Div,
            ("_==_", [_, _]) => BinaryOp::Eq,
            ("_!=_", [_, _]) => BinaryOp::Ne,
            ("_<_", [_, _]) => BinaryOp::Lt,
            ("_<=_", [_, _]) => BinaryOp::Le,
            ("_>_", [_, _]) => BinaryOp::Gt,
            ("_>=_", [_, _]) => BinaryOp::Ge,
            _ => return Err(Unsupported::Calls(function.to_owned())),
        };
        Ok(Expr::Binary(op, boxed(&args[0])?, boxed(&args[1])?))
    }

    /// A plain JSONPath of a `from` object: `$.alias` then field names and list positions.
    fn path(&self, path: &JsonPathExpr) -> Result<Expr, PushdownError> {
        match path.as_plain() {
            Some(plain) if self.from.contains(&plain.alias) => Ok(Expr::Path(plain)),
            _ => Err(PushdownError::NotPlainPath(path.source().to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use data_exchange::edge::{Path, Step};

    use super::*;
    use crate::cast::plan::test_plan;

    fn described(edges: &str) -> Result<Edge, PushdownError> {
        let plan = test_plan(edges);
        describe(&plan, &plan.edges[0])
    }

    fn order(field: &str) -> Box<Expr> {
        Box::new(Expr::Select(Box::new(Expr::Alias("order".into())), field.into()))
    }

    fn string(s: &str) -> Box<Expr> {
        Box::new(Expr::Literal(Literal::String(s.into())))
    }

    #[test]
    fn simple_edges_translate_to_expression_trees() {
        let edge = described(
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
        assert_eq!(edge.name(), "t/e");
        assert_eq!(edge.target().to_string(), "shipping/shipments");
        assert_eq!(edge.key(), None);
        let paid = Expr::Has(Box::new(Expr::Alias("order".into())), "paymentID".into());
        let placed = Expr::Binary(BinaryOp::Eq, order("status"), string("placed"));
        assert_eq!(edge.when(), Some(&Expr::And(Box::new(paid), Box::new(placed))));
        let items = Expr::Path(Path {
            alias: "order".into(),
            steps: vec![Step::Field("items".into()), Step::Index(0), Step::Field("sku".into())],
        });
        let hundred = Box::new(Expr::Literal(Literal::Double(100.0)));
        let big = Box::new(Expr::Binary(BinaryOp::Gt, order("total"), hundred));
        let method = Expr::Cond(big, string("air"), string("ground"));
        assert_eq!(edge.set(), [(vec!["items".into()], items), (vec!["method".into()], method)]);
    }

    #[test]
    fn other_edges_say_why_they_stay_in_the_integrator() {
        let why = |edges: &str| described(edges).unwrap_err().to_string();
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
        let index =
            "    - {name: e, from: [order], to: shipment, set: {a: 'order.items[order.n]'}}\n";
        let error = described(index).unwrap_err();
        assert!(matches!(error, PushdownError::Cel { reason: Unsupported::Index, .. }), "{error}");
    }
}
