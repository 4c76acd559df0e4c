//! Golden tests of the expression language: parse, then evaluate against one row.

use serde_json::{json, Value};

use super::{parse_select_list, Expr, SelectItem};
use crate::error::{ExprError, RowError};
use crate::Row;

fn row() -> Row {
    let value = json!({
        "type": "purchase", "amount": 250, "price": 2.5, "name": "  Ada Lovelace ",
        "country": null, "qty": "3", "user": {"id": 7, "tier": "gold"}, "flag": true
    });
    let Value::Object(map) = value else {
        unreachable!()
    };
    Row::new(map, 1_735_552_800_000)
}

fn eval(text: &str) -> Value {
    Expr::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .eval(&row())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn golden_values() {
    let cases: &[(&str, Value)] = &[
        ("type = 'purchase'", json!(true)),
        ("type <> 'purchase'", json!(false)),
        ("amount > 100 AND price < 3", json!(true)),
        ("amount > 1000 OR user.tier = 'gold'", json!(true)),
        ("NOT flag", json!(false)),
        ("amount + 1", json!(251)),
        ("amount - 300", json!(-50)),
        ("amount * price", json!(625.0)),
        ("amount / 100", json!(2.5)),
        ("amount % 7", json!(5)),
        ("-amount", json!(-250)),
        ("qty * 2", json!(6)),
        ("2 + 3 * 4", json!(14)),
        ("(2 + 3) * 4", json!(20)),
        ("1e6", json!(1_000_000.0)),
        ("lower(type)", json!("purchase")),
        ("upper(user.tier)", json!("GOLD")),
        ("length(trim(name))", json!(12)),
        ("ltrim(name)", json!("Ada Lovelace ")),
        ("rtrim(name)", json!("  Ada Lovelace")),
        ("concat(type, '-', user.id)", json!("purchase-7")),
        ("type || '!'", json!("purchase!")),
        ("substring('abcdef', 2, 3)", json!("bcd")),
        ("substring('abcdef', 0, 2)", json!("ab")),
        ("substring('abcdef', -2)", json!("ef")),
        ("substring('abcdef', 3, -1)", json!("")),
        ("substring('abcdef', 10)", json!("")),
        (
            "CASE WHEN amount > 1000 THEN 'big' WHEN amount > 100 THEN 'mid' ELSE 'small' END",
            json!("mid"),
        ),
        (
            "CASE user.tier WHEN 'gold' THEN 1 WHEN 'silver' THEN 2 END",
            json!(1),
        ),
        ("CASE WHEN amount > 1000 THEN 'big' END", Value::Null),
        ("CAST(qty AS BIGINT) + 1", json!(4)),
        ("CAST(amount AS STRING)", json!("250")),
        ("CAST('2.75' AS DOUBLE)", json!(2.75)),
        ("CAST('abc' AS DOUBLE)", Value::Null),
        ("CAST('yes' AS BOOLEAN)", json!(true)),
        ("CAST(price AS INT)", json!(2)),
        (
            "CAST(1735552800 AS TIMESTAMP)",
            json!("2024-12-30T10:00:00.000Z"),
        ),
        (
            "CAST('2024-12-30T12:00:00+02:00' AS TIMESTAMP)",
            json!("2024-12-30T10:00:00.000Z"),
        ),
        ("country IS NULL", json!(true)),
        ("missing.field IS NULL", json!(true)),
        ("country IS NOT NULL", json!(false)),
        ("amount BETWEEN 0 AND 1e6", json!(true)),
        ("amount NOT BETWEEN 0 AND 100", json!(true)),
        ("type IN ('view', 'purchase')", json!(true)),
        ("type NOT IN ('view', 'click')", json!(true)),
        ("name LIKE '%Ada%'", json!(true)),
        ("type LIKE 'p_rch%e'", json!(true)),
        ("type NOT LIKE 'view%'", json!(true)),
        ("coalesce(country, 'unknown')", json!("unknown")),
        ("abs(-4.5)", json!(4.5)),
        ("\"type\" = 'purchase'", json!(true)),
        ("-9223372036854775808", json!(i64::MIN)),
        ("'it''s'", json!("it's")),
    ];
    for (text, expected) in cases {
        assert_eq!(&eval(text), expected, "{text}");
    }
}

#[test]
fn null_semantics_follow_sql() {
    let cases: &[(&str, Value)] = &[
        ("country = 'FR'", Value::Null),
        ("country = NULL", Value::Null),
        ("NOT (country = 'FR')", Value::Null),
        ("country = 'FR' AND FALSE", json!(false)),
        ("country = 'FR' AND TRUE", Value::Null),
        ("country = 'FR' OR TRUE", json!(true)),
        ("country = 'FR' OR FALSE", Value::Null),
        ("amount + country", Value::Null),
        ("upper(country)", Value::Null),
        ("concat(type, country)", Value::Null),
        ("type || country", Value::Null),
        ("country IN ('FR')", Value::Null),
        ("'x' IN ('y', NULL)", Value::Null),
        ("'y' IN ('y', NULL)", json!(true)),
        ("country BETWEEN 1 AND 2", Value::Null),
        ("amount BETWEEN NULL AND 1", json!(false)),
        ("country LIKE '%'", Value::Null),
        ("CAST(country AS STRING)", Value::Null),
        ("CASE country WHEN NULL THEN 1 ELSE 2 END", json!(2)),
    ];
    for (text, expected) in cases {
        assert_eq!(&eval(text), expected, "{text}");
    }
}

#[test]
fn row_level_errors_are_typed() {
    let r = row();
    let err = |text: &str| Expr::parse(text).unwrap().eval(&r).unwrap_err();
    assert_eq!(err("amount / 0"), RowError::DivisionByZero);
    assert_eq!(err("amount % 0"), RowError::DivisionByZero);
    assert!(matches!(
        err("9223372036854775807 + 1"),
        RowError::Overflow(_)
    ));
    assert!(matches!(
        err("-9223372036854775808 * -1"),
        RowError::Overflow(_)
    ));
    assert!(matches!(
        err("abs(-9223372036854775808)"),
        RowError::Overflow(_)
    ));
    assert!(matches!(err("type + 1"), RowError::Type(_)));
    assert!(matches!(err("amount AND flag"), RowError::Type(_)));
    assert!(matches!(err("user > 3"), RowError::Type(_)));
    assert!(matches!(
        Expr::parse("amount").unwrap().eval_predicate(&r),
        Err(RowError::Type(_))
    ));
}

#[test]
fn parse_errors_are_typed_with_positions() {
    assert_eq!(Expr::parse(""), Err(ExprError::Empty));
    assert_eq!(
        Expr::parse("a = 'x"),
        Err(ExprError::UnterminatedString { position: 4 })
    );
    assert_eq!(
        Expr::parse("a # b"),
        Err(ExprError::UnexpectedChar {
            found: '#',
            position: 2
        })
    );
    assert!(matches!(
        Expr::parse("a = "),
        Err(ExprError::Unexpected { position: 4, .. })
    ));
    assert!(matches!(
        Expr::parse("a b"),
        Err(ExprError::Unexpected { position: 2, .. })
    ));
    assert_eq!(
        Expr::parse("frobnicate(a)"),
        Err(ExprError::UnknownFunction {
            name: "frobnicate".into()
        })
    );
    assert!(matches!(
        Expr::parse("lower(a, b)"),
        Err(ExprError::Arity { got: 2, .. })
    ));
    assert!(matches!(
        Expr::parse("CAST(a AS BLOB)"),
        Err(ExprError::UnknownType { .. })
    ));
    assert!(matches!(
        Expr::parse("CASE END"),
        Err(ExprError::Unexpected { .. })
    ));
    assert!(matches!(
        Expr::parse("a NOT = 1"),
        Err(ExprError::Unexpected { .. })
    ));
    assert!(matches!(
        Expr::parse("1.2.3"),
        Err(ExprError::InvalidNumber { .. })
    ));
    let deep = "(".repeat(200) + "1" + &")".repeat(200);
    assert_eq!(Expr::parse(&deep), Err(ExprError::TooDeep { limit: 64 }));
    let nots = "NOT ".repeat(200) + "TRUE";
    assert_eq!(Expr::parse(&nots), Err(ExprError::TooDeep { limit: 64 }));
    let negs = "-".repeat(200) + "1";
    assert_eq!(Expr::parse(&negs), Err(ExprError::TooDeep { limit: 64 }));
    let long = "a + ".repeat(20_000) + "1";
    assert!(matches!(Expr::parse(&long), Err(ExprError::TooLong { .. })));
}

#[test]
fn select_lists_name_their_items() {
    let items = parse_select_list("*, amount * 2 AS double_amount, user.id, lower(type)").unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], SelectItem::Wildcard);
    let names: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            SelectItem::Expr { alias, .. } => Some(alias.as_str()),
            SelectItem::Wildcard => None,
        })
        .collect();
    assert_eq!(names, ["double_amount", "id", "lower(type)"]);
    assert!(parse_select_list("a AS").is_err());
    assert!(parse_select_list("a,").is_err());
}

#[test]
fn like_handles_many_wildcards_quickly() {
    let r = row();
    let text = "a".repeat(2000);
    let pattern = "%a".repeat(500) + "b";
    let e = Expr::parse(&format!("'{text}' LIKE '{pattern}'")).unwrap();
    assert_eq!(e.eval(&r).unwrap(), json!(false));
}

proptest::proptest! {
    /// Hostile expression text never panics: it parses or yields a typed error, and
    /// whatever parses evaluates to a value or a typed row error.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~]{0,120}") {
        if let Ok(e) = Expr::parse(&text) {
            let _ = e.eval(&row());
        }
        let _ = parse_select_list(&text);
    }

    /// Text built from the grammar's own tokens reaches deeper parser paths.
    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(vec![
        "amount", "type", "NULL", "1", "-", "2.5e3", "'x'", "(", ")", ",", "AND", "OR", "NOT",
        "=", "<", "+", "*", "/", "%", "||", "IS", "BETWEEN", "IN", "LIKE", "CASE", "WHEN",
        "THEN", "ELSE", "END", "CAST", "AS", "BIGINT", "lower", "substring", "9223372036854775807",
    ]), 0..40)) {
        let text = tokens.join(" ");
        if let Ok(e) = Expr::parse(&text) {
            let _ = e.eval(&row());
        }
    }
}
