//! Evaluation of parsed expressions against one row, with SQL NULL semantics.
//!
//! Every failure is a [`RowError`] for that row (the operator dead-letters it); nothing
//! here panics or overflows on input: integer arithmetic is checked, float results that
//! are not finite are errors, string positions are clamped.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{BinaryOp, CastType, Expr, Function};
use crate::error::RowError;
use crate::row::lookup_path;
use crate::time::{float_to_i64, format_millis, parse_rfc3339};
use crate::Row;

pub(super) fn eval(expr: &Expr, row: &Row) -> Result<Value, RowError> {
    match expr {
        Expr::Column(name) => Ok(row.column(name).unwrap_or(Value::Null)),
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Not(inner) => Ok(match truth(&eval(inner, row)?)? {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        }),
        Expr::Negate(inner) => {
            let v = eval(inner, row)?;
            arithmetic(BinaryOp::Sub, &Value::from(0), &v)
        }
        Expr::Binary { op, left, right } => binary(*op, left, right, row),
        Expr::IsNull { expr, negated } => {
            let is_null = eval(expr, row)?.is_null();
            Ok(Value::Bool(is_null != *negated))
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let v = eval(expr, row)?;
            let lo = compare_op(BinaryOp::GtEq, &v, &eval(low, row)?)?;
            let hi = compare_op(BinaryOp::LtEq, &v, &eval(high, row)?)?;
            let inside = and3(lo, hi);
            Ok(bool3(inside.map(|b| b != *negated)))
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, row)?;
            if v.is_null() {
                return Ok(Value::Null);
            }
            let mut saw_null = false;
            for item in list {
                match compare_op(BinaryOp::Eq, &v, &eval(item, row)?)? {
                    Some(true) => return Ok(Value::Bool(!*negated)),
                    Some(false) => {}
                    None => saw_null = true,
                }
            }
            Ok(if saw_null {
                Value::Null
            } else {
                Value::Bool(*negated)
            })
        }
        Expr::Like {
            expr,
            pattern,
            negated,
        } => {
            let (v, p) = (eval(expr, row)?, eval(pattern, row)?);
            if v.is_null() || p.is_null() {
                return Ok(Value::Null);
            }
            let text: Vec<char> = to_text(&v).chars().collect();
            let pat: Vec<char> = to_text(&p).chars().collect();
            Ok(Value::Bool(like(&text, &pat) != *negated))
        }
        Expr::Case {
            operand,
            branches,
            otherwise,
        } => {
            let operand = operand.as_ref().map(|o| eval(o, row)).transpose()?;
            for (when, then) in branches {
                let w = eval(when, row)?;
                let hit = match &operand {
                    Some(o) => compare_op(BinaryOp::Eq, o, &w)? == Some(true),
                    None => truth(&w)? == Some(true),
                };
                if hit {
                    return eval(then, row);
                }
            }
            otherwise.as_ref().map_or(Ok(Value::Null), |e| eval(e, row))
        }
        Expr::Cast { expr, to } => Ok(cast(eval(expr, row)?, *to)),
        Expr::Function { func, args } => {
            let values = args
                .iter()
                .map(|a| eval(a, row))
                .collect::<Result<Vec<_>, _>>()?;
            function(*func, &values)
        }
    }
}

fn binary(op: BinaryOp, left: &Expr, right: &Expr, row: &Row) -> Result<Value, RowError> {
    match op {
        BinaryOp::And => {
            let l = truth(&eval(left, row)?)?;
            if l == Some(false) {
                return Ok(Value::Bool(false)); // short-circuit, as SQL allows
            }
            Ok(bool3(and3(l, truth(&eval(right, row)?)?)))
        }
        BinaryOp::Or => {
            let l = truth(&eval(left, row)?)?;
            if l == Some(true) {
                return Ok(Value::Bool(true));
            }
            let r = truth(&eval(right, row)?)?;
            Ok(bool3(match (l, r) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            }))
        }
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq => {
            // Two strings read without a `Value` (a slot row's field, a literal): the
            // comparison `compare_op` makes of two strings.
            if let (Some(l), Some(r)) = (text_operand(left, row), text_operand(right, row)) {
                return Ok(Value::Bool(holds(op, l.cmp(r))));
            }
            Ok(bool3(compare_op(
                op,
                &*operand(left, row)?,
                &*operand(right, row)?,
            )?))
        }
        BinaryOp::Concat => {
            let (l, r) = (eval(left, row)?, eval(right, row)?);
            if l.is_null() || r.is_null() {
                return Ok(Value::Null);
            }
            Ok(Value::String(to_text(&l) + &to_text(&r)))
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            arithmetic(op, &*operand(left, row)?, &*operand(right, row)?)
        }
    }
}

/// An operand that is only read: a field of the row's value or a literal is borrowed,
/// not cloned (a filter's `kind <> 'view'` copies no string per row).
pub(super) fn operand<'a>(expr: &'a Expr, row: &'a Row) -> Result<Cow<'a, Value>, RowError> {
    match expr {
        Expr::Literal(v) => Ok(Cow::Borrowed(v)),
        Expr::Column(name) if !name.starts_with('_') && !row.has_slots() => {
            Ok(lookup_path(&row.value, name).map_or(Cow::Owned(Value::Null), Cow::Borrowed))
        }
        other => eval(other, row).map(Cow::Owned),
    }
}

/// A string operand that needs no `Value`: a string literal, or a string field of a
/// slot row borrowed from its bytes. `None` for anything else (then read it as a value).
fn text_operand<'a>(expr: &'a Expr, row: &'a Row) -> Option<&'a str> {
    match expr {
        Expr::Literal(Value::String(s)) => Some(s),
        Expr::Column(name) => row.field_text(name),
        _ => None,
    }
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn bool3(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

/// A value as a SQL boolean: TRUE, FALSE or NULL (`None`).
fn truth(v: &Value) -> Result<Option<bool>, RowError> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        other => Err(RowError::Type(format!("{other} is not a boolean"))),
    }
}

/// A number, or a string holding one (Spark's implicit cast).
enum Num {
    Int(i64),
    Float(f64),
}

fn to_num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_f64().map(Num::Float)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().map(Num::Int).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            })
        }
        _ => None,
    }
}

fn as_f64(n: &Num) -> f64 {
    match n {
        Num::Int(i) => *i as f64,
        Num::Float(f) => *f,
    }
}

fn float_value(f: f64, what: &str) -> Result<Value, RowError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| RowError::Overflow(what.into()))
}

fn arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value, RowError> {
    if l.is_null() || r.is_null() {
        return Ok(Value::Null);
    }
    let (Some(a), Some(b)) = (to_num(l), to_num(r)) else {
        return Err(RowError::Type(format!(
            "cannot apply {op:?} to {l} and {r}"
        )));
    };
    let name = format!("{op:?}");
    match (op, &a, &b) {
        (BinaryOp::Div, _, _) => {
            let d = as_f64(&b);
            if d == 0.0 {
                return Err(RowError::DivisionByZero);
            }
            float_value(as_f64(&a) / d, &name)
        }
        (BinaryOp::Mod, Num::Int(x), Num::Int(y)) => {
            if *y == 0 {
                return Err(RowError::DivisionByZero);
            }
            // i64::MIN % -1 overflows in Rust; its SQL answer is 0.
            Ok(Value::from(x.checked_rem(*y).unwrap_or(0)))
        }
        (_, Num::Int(x), Num::Int(y)) => {
            let result = match op {
                BinaryOp::Add => x.checked_add(*y),
                BinaryOp::Sub => x.checked_sub(*y),
                _ => x.checked_mul(*y),
            };
            result.map(Value::from).ok_or(RowError::Overflow(name))
        }
        _ => {
            let (x, y) = (as_f64(&a), as_f64(&b));
            let f = match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                _ => {
                    if y == 0.0 {
                        return Err(RowError::DivisionByZero);
                    }
                    x % y
                }
            };
            float_value(f, &name)
        }
    }
}

/// Order two non-null values; `None` when they are not comparable.
pub(crate) fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Number(_) | Value::String(_), Value::Number(_) | Value::String(_)) => {
            match (to_num(a)?, to_num(b)?) {
                (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
                (x, y) => as_f64(&x).partial_cmp(&as_f64(&y)),
            }
        }
        _ => None,
    }
}

/// A comparison with SQL NULL semantics: NULL on either side yields NULL.
fn compare_op(op: BinaryOp, a: &Value, b: &Value) -> Result<Option<bool>, RowError> {
    if a.is_null() || b.is_null() {
        return Ok(None);
    }
    let ordering = match order(a, b) {
        Some(o) => o,
        // Arrays and objects compare for equality only, as JSON.
        None if matches!(op, BinaryOp::Eq | BinaryOp::NotEq)
            && a.is_array() == b.is_array()
            && a.is_object() == b.is_object()
            && (a.is_array() || a.is_object()) =>
        {
            return Ok(Some((a == b) == (op == BinaryOp::Eq)));
        }
        None => return Err(RowError::Type(format!("cannot compare {a} with {b}"))),
    };
    Ok(Some(holds(op, ordering)))
}

/// Whether comparison `op` holds for two values ordered `ordering`.
fn holds(op: BinaryOp, ordering: Ordering) -> bool {
    match op {
        BinaryOp::Eq => ordering == Ordering::Equal,
        BinaryOp::NotEq => ordering != Ordering::Equal,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::LtEq => ordering != Ordering::Greater,
        BinaryOp::Gt => ordering == Ordering::Greater,
        _ => ordering != Ordering::Less,
    }
}

/// A value as text: strings as they are, everything else as JSON.
pub(crate) fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// SQL CAST with Spark's non-ANSI behaviour: what cannot convert becomes NULL.
fn cast(v: Value, to: CastType) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match to {
        CastType::String => Value::String(to_text(&v)),
        CastType::BigInt => match (&v, to_num(&v)) {
            (Value::Bool(b), _) => Value::from(i64::from(*b)),
            (_, Some(Num::Int(i))) => Value::from(i),
            (_, Some(Num::Float(f))) => float_to_i64(f).map_or(Value::Null, Value::from),
            _ => Value::Null,
        },
        CastType::Double => match (&v, to_num(&v)) {
            (Value::Bool(b), _) => Value::from(if *b { 1.0 } else { 0.0 }),
            (_, Some(n)) => Number::from_f64(as_f64(&n)).map_or(Value::Null, Value::Number),
            _ => Value::Null,
        },
        CastType::Boolean => match &v {
            Value::Bool(_) => v,
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
                "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
                _ => Value::Null,
            },
            Value::Number(_) => match to_num(&v) {
                Some(n) => Value::Bool(as_f64(&n) != 0.0),
                None => Value::Null,
            },
            _ => Value::Null,
        },
        CastType::Timestamp => {
            let millis = match &v {
                Value::String(s) => parse_rfc3339(s),
                Value::Number(_) => match to_num(&v) {
                    // Spark reads a number cast to TIMESTAMP as epoch seconds.
                    Some(n) => float_to_i64(as_f64(&n) * 1000.0),
                    None => None,
                },
                _ => None,
            };
            millis.map_or(Value::Null, format_millis)
        }
    }
}

fn function(func: Function, args: &[Value]) -> Result<Value, RowError> {
    let first = args.first().unwrap_or(&Value::Null);
    match func {
        Function::Coalesce => Ok(args
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null)),
        // Spark's concat: NULL if any argument is NULL.
        Function::Concat => {
            if args.iter().any(Value::is_null) {
                return Ok(Value::Null);
            }
            Ok(Value::String(args.iter().map(to_text).collect()))
        }
        _ if first.is_null() => Ok(Value::Null),
        Function::Lower => Ok(Value::String(to_text(first).to_lowercase())),
        Function::Upper => Ok(Value::String(to_text(first).to_uppercase())),
        Function::Trim => Ok(Value::String(to_text(first).trim().to_string())),
        Function::Ltrim => Ok(Value::String(to_text(first).trim_start().to_string())),
        Function::Rtrim => Ok(Value::String(to_text(first).trim_end().to_string())),
        Function::Length => Ok(Value::from(to_text(first).chars().count())),
        Function::Abs => match to_num(first) {
            Some(Num::Int(i)) => i
                .checked_abs()
                .map(Value::from)
                .ok_or_else(|| RowError::Overflow("abs".into())),
            Some(Num::Float(f)) => float_value(f.abs(), "abs"),
            None => Err(RowError::Type(format!("abs of {first}"))),
        },
        Function::Substring => substring(first, args.get(1), args.get(2)),
    }
}

/// SQL SUBSTRING(s, pos[, len]), 1-based; pos 0 acts as 1 and a negative pos counts from
/// the end (Spark's rules).
fn substring(s: &Value, pos: Option<&Value>, len: Option<&Value>) -> Result<Value, RowError> {
    let as_int = |v: &Value| match to_num(v) {
        Some(Num::Int(i)) => Ok(Some(i)),
        Some(Num::Float(f)) => Ok(float_to_i64(f)),
        None if v.is_null() => Ok(None),
        None => Err(RowError::Type(format!(
            "substring position {v} is not a number"
        ))),
    };
    let Some(pos) = pos.map(as_int).transpose()?.flatten() else {
        return Ok(Value::Null);
    };
    let len = match len {
        Some(v) => match as_int(v)? {
            Some(l) => Some(l),
            None => return Ok(Value::Null),
        },
        None => None,
    };
    let chars: Vec<char> = to_text(s).chars().collect();
    let count = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = if pos > 0 {
        pos - 1
    } else if pos == 0 {
        0
    } else {
        count.saturating_add(pos).max(0)
    };
    let end = match len {
        Some(l) if l <= 0 => start,
        Some(l) => start.saturating_add(l),
        None => count,
    };
    let (start, end) = (start.clamp(0, count), end.clamp(0, count));
    let slice = chars
        .get(usize::try_from(start).unwrap_or(0)..usize::try_from(end).unwrap_or(0))
        .unwrap_or(&[]);
    Ok(Value::String(slice.iter().collect()))
}

/// SQL LIKE: `%` any run, `_` one character. Iterative with one backtrack point, so a
/// pattern of many `%` stays linear-ish rather than exponential.
fn like(text: &[char], pattern: &[char]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '_' || Some(c) == text.get(t) => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).unwrap_or(&[]).iter().all(|c| *c == '%')
}
