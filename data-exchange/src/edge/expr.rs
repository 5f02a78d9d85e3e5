//! The expressions of an [`Edge`](super::Edge): a typed tree that reads the edge's source
//! objects and the triggering object's name.
//!
//! They mean what the CEL expressions they come from mean, with every number a double; a
//! backend that runs them is held to that by the golden Cast cases, which run both in the
//! integrator and in the exchange.

use std::collections::BTreeSet;

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// The data of the source object bound to this alias.
    Alias(String),
    /// The triggering object's name.
    Key,
    /// A field of an object (`order.total`).
    Select(Box<Expr>, String),
    /// Whether an object has a field (`has(order.total)`).
    Has(Box<Expr>, String),
    /// A constant.
    Literal(Literal),
    /// A list of values.
    List(Vec<Expr>),
    /// A map with string keys, in the order written.
    Map(Vec<(String, Expr)>),
    /// `!a` or `-a`.
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`, both operands evaluated.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `condition ? then : otherwise`, only the chosen branch evaluated.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// An element of a list or a map at a constant index (`items[0]`, `m["k"]`).
    Index(Box<Expr>, Index),
    /// A plain JSONPath: its value, or nothing when it matches nothing.
    Path(Path),
}

/// A constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// A number.
    Double(f64),
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
}

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`: boolean negation.
    Not,
    /// `-`: numeric negation.
    Neg,
}

/// A binary operator whose operands are both evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`: numbers, strings or lists.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A constant index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Index {
    /// A position in a list, from 0.
    Position(u64),
    /// A key of a map.
    Key(String),
}

/// A plain JSONPath: a source alias, then field names and list positions
/// (`$.order.items[0].sku`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The source object it starts from.
    pub alias: String,
    /// The steps from there.
    pub steps: Vec<Step>,
}

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A field of an object.
    Field(String),
    /// A position in a list, from 0.
    Index(u64),
}

impl Expr {
    /// The aliases the expression reads.
    pub fn aliases(&self) -> BTreeSet<&str> {
        let mut found = BTreeSet::new();
        self.collect_aliases(&mut found);
        found
    }

    fn collect_aliases<'a>(&'a self, found: &mut BTreeSet<&'a str>) {
        match self {
            Expr::Alias(alias) | Expr::Path(Path { alias, .. }) => {
                found.insert(alias);
            }
            Expr::Key | Expr::Literal(_) => {}
            Expr::Select(operand, _)
            | Expr::Has(operand, _)
            | Expr::Unary(_, operand)
            | Expr::Index(operand, _) => operand.collect_aliases(found),
            Expr::List(items) => items.iter().for_each(|item| item.collect_aliases(found)),
            Expr::Map(entries) => {
                entries.iter().for_each(|(_, value)| value.collect_aliases(found))
            }
            Expr::Binary(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_aliases(found);
                b.collect_aliases(found);
            }
            Expr::Cond(condition, then, otherwise) => {
                for part in [condition, then, otherwise] {
                    part.collect_aliases(found);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_found_in_every_operand() {
        let read = |alias: &str, field: &str| {
            Expr::Select(Box::new(Expr::Alias(alias.into())), field.into())
        };
        let path = Expr::Path(Path { alias: "pay".into(), steps: vec![Step::Index(0)] });
        let expr = Expr::Cond(
            Box::new(Expr::Has(Box::new(Expr::Alias("order".into())), "total".into())),
            Box::new(Expr::Map(vec![("p".into(), path)])),
            Box::new(Expr::List(vec![read("ship", "cost"), Expr::Key])),
        );
        assert_eq!(expr.aliases().into_iter().collect::<Vec<_>>(), ["order", "pay", "ship"]);
    }
}
