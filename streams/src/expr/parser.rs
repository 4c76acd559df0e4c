//! Tokenizer and recursive-descent parser for the expression language.
//!
//! Precedence, lowest first: `OR`; `AND`; `NOT`; comparisons, `IS [NOT] NULL`,
//! `[NOT] BETWEEN`, `[NOT] IN`, `[NOT] LIKE`; `+ - ||`; `* / %`; unary `-`; primaries.
//! Input is bounded: at most [`MAX_EXPR_LEN`] bytes and [`MAX_DEPTH`] levels of nesting,
//! so a hostile job file cannot overflow the stack.

use serde_json::{Number, Value};

use super::{BinaryOp, CastType, Expr, Function, SelectItem};
use crate::error::ExprError;

/// Longest expression text accepted.
pub const MAX_EXPR_LEN: usize = 64 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A quoted identifier ("x" or `x`): never a keyword.
    QuotedIdent(String),
    Number(String),
    Str(String),
    Sym(&'static str),
}

fn describe(token: Option<&(Token, usize)>) -> String {
    match token {
        None => "end of expression".into(),
        Some((Token::Ident(s) | Token::QuotedIdent(s), _)) => format!("identifier {s}"),
        Some((Token::Number(s), _)) => format!("number {s}"),
        Some((Token::Str(s), _)) => format!("string '{s}'"),
        Some((Token::Sym(s), _)) => format!("'{s}'"),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ExprError> {
    if text.len() > MAX_EXPR_LEN {
        return Err(ExprError::TooLong {
            limit: MAX_EXPR_LEN,
        });
    }
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    s.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push((Token::Ident(s), pos));
        } else if c.is_ascii_digit()
            || (c == '.'
                && text
                    .get(pos + 1..)
                    .is_some_and(|r| r.starts_with(|d: char| d.is_ascii_digit())))
        {
            let mut s = String::new();
            let mut prev = ' ';
            while let Some(&(_, c)) = chars.peek() {
                let exponent_sign = (c == '+' || c == '-') && (prev == 'e' || prev == 'E');
                if c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || exponent_sign {
                    s.push(c);
                    prev = c;
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push((Token::Number(s), pos));
        } else if c == '\'' || c == '"' || c == '`' {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, d)) = chars.next() {
                if d == c {
                    // A doubled quote is an escaped quote, as in SQL.
                    if chars.peek().map(|&(_, e)| e) == Some(c) {
                        s.push(c);
                        chars.next();
                    } else {
                        closed = true;
                        break;
                    }
                } else {
                    s.push(d);
                }
            }
            if !closed {
                return Err(ExprError::UnterminatedString { position: pos });
            }
            tokens.push((
                if c == '\'' {
                    Token::Str(s)
                } else {
                    Token::QuotedIdent(s)
                },
                pos,
            ));
        } else {
            const SYMBOLS: [&str; 17] = [
                "<=", ">=", "<>", "!=", "||", "(", ")", ",", ".", "+", "-", "*", "/", "%", "=",
                "<", ">",
            ];
            let rest = &text[pos..];
            let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) else {
                return Err(ExprError::UnexpectedChar {
                    found: c,
                    position: pos,
                });
            };
            for _ in 0..sym.len() {
                chars.next();
            }
            tokens.push((Token::Sym(sym), pos));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
    depth: usize,
    end: usize,
}

/// Parse one expression; the whole text must be consumed.
pub(crate) fn parse_expr(text: &str) -> Result<Expr, ExprError> {
    let mut p = Parser::new(text)?;
    if p.tokens.is_empty() {
        return Err(ExprError::Empty);
    }
    let expr = p.expr()?;
    p.expect_end()?;
    Ok(expr)
}

/// Parse a select list: `*, amount * 2 AS double_amount, lower(name) AS name`.
/// An item without `AS` is named after its column (last path segment of a dotted path)
/// or, for other expressions, after its own text.
pub fn parse_select_list(text: &str) -> Result<Vec<SelectItem>, ExprError> {
    let mut p = Parser::new(text)?;
    if p.tokens.is_empty() {
        return Err(ExprError::Empty);
    }
    let mut items = Vec::new();
    loop {
        let start = p.offset();
        if p.eat_sym("*") {
            items.push(SelectItem::Wildcard);
        } else {
            let expr = p.expr()?;
            let alias = if p.eat_keyword("AS") {
                p.identifier()?
            } else {
                match &expr {
                    Expr::Column(c) => c.rsplit('.').next().unwrap_or(c).to_string(),
                    _ => text.get(start..p.offset()).unwrap_or("").trim().to_string(),
                }
            };
            items.push(SelectItem::Expr { expr, alias });
        }
        if !p.eat_sym(",") {
            break;
        }
    }
    p.expect_end()?;
    Ok(items)
}

impl Parser {
    fn new(text: &str) -> Result<Self, ExprError> {
        Ok(Parser {
            tokens: tokenize(text)?,
            pos: 0,
            depth: 0,
            end: text.len(),
        })
    }

    fn peek(&self) -> Option<&(Token, usize)> {
        self.tokens.get(self.pos)
    }

    /// Byte offset of the next token (the text length at the end).
    fn offset(&self) -> usize {
        self.peek().map_or(self.end, |(_, p)| *p)
    }

    fn error(&self, expected: &str) -> ExprError {
        ExprError::Unexpected {
            expected: expected.into(),
            found: describe(self.peek()),
            position: self.offset(),
        }
    }

    fn expect_end(&self) -> Result<(), ExprError> {
        if self.pos < self.tokens.len() {
            Err(self.error("end of expression"))
        } else {
            Ok(())
        }
    }

    fn is_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some((Token::Ident(s), _)) if s.eq_ignore_ascii_case(kw))
    }

    fn is_keyword_at(&self, offset: usize, kw: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset), Some((Token::Ident(s), _)) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let hit = self.is_keyword(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), ExprError> {
        if self.eat_keyword(kw) {
            Ok(())
        } else {
            Err(self.error(kw))
        }
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        let hit = matches!(self.peek(), Some((Token::Sym(s), _)) if *s == sym);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), ExprError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.error(&format!("'{sym}'")))
        }
    }

    fn identifier(&mut self) -> Result<String, ExprError> {
        match self.peek() {
            Some((Token::Ident(s) | Token::QuotedIdent(s), _)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error("identifier")),
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ExprError::TooDeep { limit: MAX_DEPTH })
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.enter()?;
        let result = self.or();
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            left = binary(BinaryOp::Or, left, right);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            let right = self.not()?;
            left = binary(BinaryOp::And, left, right);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.eat_keyword("NOT") {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            Ok(Expr::Not(Box::new(inner?)))
        } else {
            self.comparison()
        }
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let left = self.additive()?;
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull {
                expr: Box::new(left),
                negated,
            });
        }
        let negated = self.is_keyword("NOT")
            && (self.is_keyword_at(1, "BETWEEN")
                || self.is_keyword_at(1, "IN")
                || self.is_keyword_at(1, "LIKE"));
        if negated {
            self.pos += 1;
        }
        if self.eat_keyword("BETWEEN") {
            let low = self.additive()?;
            self.expect_keyword("AND")?;
            let high = self.additive()?;
            return Ok(Expr::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            });
        }
        if self.eat_keyword("IN") {
            self.expect_sym("(")?;
            let list = self.arguments()?;
            return Ok(Expr::InList {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        if self.eat_keyword("LIKE") {
            let pattern = self.additive()?;
            return Ok(Expr::Like {
                expr: Box::new(left),
                pattern: Box::new(pattern),
                negated,
            });
        }
        if negated {
            return Err(self.error("BETWEEN, IN or LIKE"));
        }
        let op = match self.peek() {
            Some((Token::Sym("="), _)) => BinaryOp::Eq,
            Some((Token::Sym("!=" | "<>"), _)) => BinaryOp::NotEq,
            Some((Token::Sym("<"), _)) => BinaryOp::Lt,
            Some((Token::Sym("<="), _)) => BinaryOp::LtEq,
            Some((Token::Sym(">"), _)) => BinaryOp::Gt,
            Some((Token::Sym(">="), _)) => BinaryOp::GtEq,
            _ => return Ok(left),
        };
        self.pos += 1;
        let right = self.additive()?;
        Ok(binary(op, left, right))
    }

    fn additive(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some((Token::Sym("+"), _)) => BinaryOp::Add,
                Some((Token::Sym("-"), _)) => BinaryOp::Sub,
                Some((Token::Sym("||"), _)) => BinaryOp::Concat,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.multiplicative()?;
            left = binary(op, left, right);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some((Token::Sym("*"), _)) => BinaryOp::Mul,
                Some((Token::Sym("/"), _)) => BinaryOp::Div,
                Some((Token::Sym("%"), _)) => BinaryOp::Mod,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = binary(op, left, right);
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat_sym("-") {
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            // Fold `-<number>` so `-9223372036854775808` is a literal, not an overflow.
            return Ok(match inner? {
                Expr::Literal(Value::Number(n)) => match negate_number(&n) {
                    Some(v) => Expr::Literal(v),
                    None => Expr::Negate(Box::new(Expr::Literal(Value::Number(n)))),
                },
                other => Expr::Negate(Box::new(other)),
            });
        }
        if self.eat_sym("+") {
            return self.unary();
        }
        self.primary()
    }

    /// Arguments after an opening parenthesis, through the closing one.
    fn arguments(&mut self) -> Result<Vec<Expr>, ExprError> {
        let mut args = Vec::new();
        if self.eat_sym(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat_sym(")") {
                return Ok(args);
            }
            self.expect_sym(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let Some((token, position)) = self.peek().cloned() else {
            return Err(self.error("an expression"));
        };
        self.pos += 1;
        match token {
            Token::Number(text) => parse_number(&text, position).map(Expr::Literal),
            Token::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Token::Sym("(") => {
                let inner = self.expr()?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Token::QuotedIdent(name) => self.column_path(name),
            Token::Ident(word) => self.word(word),
            Token::Sym(_) => {
                self.pos -= 1;
                Err(self.error("an expression"))
            }
        }
    }

    fn word(&mut self, word: String) -> Result<Expr, ExprError> {
        match word.to_ascii_uppercase().as_str() {
            "NULL" => return Ok(Expr::Literal(Value::Null)),
            "TRUE" => return Ok(Expr::Literal(Value::Bool(true))),
            "FALSE" => return Ok(Expr::Literal(Value::Bool(false))),
            "CASE" => return self.case(),
            "CAST" => return self.cast(),
            _ => {}
        }
        if self.eat_sym("(") {
            let func = Function::from_name(&word)
                .ok_or_else(|| ExprError::UnknownFunction { name: word.clone() })?;
            let args = self.arguments()?;
            let (min, max) = func.arity();
            if args.len() < min || max.is_some_and(|m| args.len() > m) {
                return Err(ExprError::Arity {
                    name: word.to_ascii_lowercase(),
                    expected: match max {
                        Some(m) if m == min => format!("{min}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    },
                    got: args.len(),
                });
            }
            return Ok(Expr::Function { func, args });
        }
        self.column_path(word)
    }

    fn column_path(&mut self, first: String) -> Result<Expr, ExprError> {
        let mut path = first;
        while self.eat_sym(".") {
            path.push('.');
            path.push_str(&self.identifier()?);
        }
        Ok(Expr::Column(path))
    }

    fn case(&mut self) -> Result<Expr, ExprError> {
        let operand = if self.is_keyword("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut branches = Vec::new();
        while self.eat_keyword("WHEN") {
            let when = self.expr()?;
            self.expect_keyword("THEN")?;
            let then = self.expr()?;
            branches.push((when, then));
        }
        if branches.is_empty() {
            return Err(self.error("WHEN"));
        }
        let otherwise = if self.eat_keyword("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_keyword("END")?;
        Ok(Expr::Case {
            operand,
            branches,
            otherwise,
        })
    }

    fn cast(&mut self) -> Result<Expr, ExprError> {
        self.expect_sym("(")?;
        let expr = self.expr()?;
        self.expect_keyword("AS")?;
        let name = self.identifier()?;
        let to = match name.to_ascii_uppercase().as_str() {
            "STRING" | "VARCHAR" | "TEXT" => CastType::String,
            "BIGINT" | "INT" | "INTEGER" | "LONG" | "SMALLINT" => CastType::BigInt,
            "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "NUMERIC" => CastType::Double,
            "BOOLEAN" | "BOOL" => CastType::Boolean,
            "TIMESTAMP" => CastType::Timestamp,
            _ => return Err(ExprError::UnknownType { name }),
        };
        self.expect_sym(")")?;
        Ok(Expr::Cast {
            expr: Box::new(expr),
            to,
        })
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn parse_number(text: &str, position: usize) -> Result<Value, ExprError> {
    let invalid = || ExprError::InvalidNumber {
        text: text.into(),
        position,
    };
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        // `9223372036854775808` is only valid negated; keep it as u64 for the fold.
        if let Ok(u) = text.parse::<u64>() {
            return Ok(Value::from(u));
        }
    }
    let f: f64 = text.parse().map_err(|_| invalid())?;
    Number::from_f64(f).map(Value::Number).ok_or_else(invalid)
}

fn negate_number(n: &Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return i.checked_neg().map(Value::from);
    }
    if n.as_u64() == Some(1u64 << 63) {
        return Some(Value::from(i64::MIN));
    }
    n.as_f64()
        .and_then(|f| Number::from_f64(-f))
        .map(Value::Number)
}
