//! The expression language: SQL-style expressions over a row's JSON fields.
//!
//! Expressions are parsed once ([`Expr::parse`], [`parse_select_list`]) when a plan is
//! built — a bad expression is an [`ExprError`](crate::ExprError) before any record is
//! read — and evaluated per row ([`Expr::eval`]). Values are `serde_json::Value`s, with
//! JSON `null` standing for SQL NULL and SQL's three-valued logic for it (`NULL AND
//! FALSE` is FALSE, `NULL = NULL` is NULL, `x IN (1, NULL)` is NULL unless it matches).
//!
//! We parse with our own small recursive-descent parser rather than `sqlparser`: the
//! grammar is a few dozen rules, the errors carry byte positions in our own typed enum,
//! and evaluation needs our own AST anyway (sqlparser's AST changes shape every release).
//! Conversions follow Spark SQL's non-ANSI defaults, which our users know: `/` yields a
//! double, a CAST that cannot convert yields NULL, strings holding numbers take part in
//! arithmetic and comparisons with numbers.

mod eval;
mod parser;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub(crate) use eval::{order, to_text};
pub use parser::{parse_select_list, MAX_DEPTH, MAX_EXPR_LEN};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column: a reserved source column (`_key`, …) or a dotted field path.
    Column(String),
    Literal(Value),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    /// `CASE [operand] WHEN … THEN … [ELSE …] END`.
    Case {
        operand: Option<Box<Expr>>,
        branches: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Cast {
        expr: Box<Expr>,
        to: CastType,
    },
    Function {
        func: Function,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// `||`, string concatenation.
    Concat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    String,
    BigInt,
    Double,
    Boolean,
    /// A time, as an RFC 3339 UTC string (from RFC 3339 text or epoch seconds, as Spark).
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Lower,
    Upper,
    Length,
    Concat,
    Substring,
    Trim,
    Ltrim,
    Rtrim,
    Coalesce,
    Abs,
}

impl Function {
    fn from_name(name: &str) -> Option<Function> {
        Some(match name.to_ascii_lowercase().as_str() {
            "lower" => Function::Lower,
            "upper" => Function::Upper,
            "length" | "char_length" => Function::Length,
            "concat" => Function::Concat,
            "substring" | "substr" => Function::Substring,
            "trim" => Function::Trim,
            "ltrim" => Function::Ltrim,
            "rtrim" => Function::Rtrim,
            "coalesce" => Function::Coalesce,
            "abs" => Function::Abs,
            _ => return None,
        })
    }

    /// Allowed argument counts, inclusive; `None` for no upper bound.
    fn arity(self) -> (usize, Option<usize>) {
        match self {
            Function::Lower
            | Function::Upper
            | Function::Length
            | Function::Trim
            | Function::Ltrim
            | Function::Rtrim
            | Function::Abs => (1, Some(1)),
            Function::Substring => (2, Some(3)),
            Function::Concat | Function::Coalesce => (1, None),
        }
    }
}

/// One item of a select list: `*`, or an expression with its output name.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// Every field of the input value.
    Wildcard,
    Expr {
        expr: Expr,
        alias: String,
    },
}

impl Expr {
    /// Parse one expression.
    pub fn parse(text: &str) -> Result<Expr, crate::ExprError> {
        parser::parse_expr(text)
    }

    /// Evaluate against one row. Type errors are per-row errors, not panics.
    pub fn eval(&self, row: &crate::Row) -> Result<Value, crate::RowError> {
        eval::eval(self, row)
    }

    /// Evaluate against one row, borrowing a field of the row's value or a literal
    /// instead of cloning it.
    pub fn eval_borrowed<'a>(
        &'a self,
        row: &'a crate::Row,
    ) -> Result<std::borrow::Cow<'a, Value>, crate::RowError> {
        eval::operand(self, row)
    }

    /// Add every column the expression reads to `out`.
    pub fn columns(&self, out: &mut std::collections::BTreeSet<String>) {
        let mut children: Vec<&Expr> = Vec::new();
        match self {
            Expr::Column(c) => {
                out.insert(c.clone());
            }
            Expr::Literal(_) => {}
            Expr::Not(e) | Expr::Negate(e) => children.push(e),
            Expr::IsNull { expr, .. } | Expr::Cast { expr, .. } => children.push(expr),
            Expr::Binary { left, right, .. } => children.extend([&**left, &**right]),
            Expr::Between {
                expr, low, high, ..
            } => children.extend([&**expr, &**low, &**high]),
            Expr::InList { expr, list, .. } => {
                children.push(expr);
                children.extend(list);
            }
            Expr::Like { expr, pattern, .. } => children.extend([&**expr, &**pattern]),
            Expr::Case {
                operand,
                branches,
                otherwise,
            } => {
                children.extend(operand.as_deref());
                for (when, then) in branches {
                    children.extend([when, then]);
                }
                children.extend(otherwise.as_deref());
            }
            Expr::Function { args, .. } => children.extend(args),
        }
        for c in children {
            c.columns(out);
        }
    }

    /// Evaluate as a predicate: `Some(true)` only for TRUE; NULL is `None`.
    pub fn eval_predicate(&self, row: &crate::Row) -> Result<Option<bool>, crate::RowError> {
        match self.eval(row)? {
            Value::Bool(b) => Ok(Some(b)),
            Value::Null => Ok(None),
            other => Err(crate::RowError::Type(format!(
                "predicate yields {other}, not a boolean"
            ))),
        }
    }
}
