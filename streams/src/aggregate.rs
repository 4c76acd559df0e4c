//! Aggregate functions and their mergeable accumulators.
//!
//! Each [`AggState`] is a small accumulator that can take one value ([`AggState::update`]),
//! merge another of the same kind (session windows merging, [`AggState::merge`]) and
//! produce its result ([`AggState::result`]). They serialize with serde so operator
//! snapshots carry them. NULL inputs are ignored, as SQL aggregates do (`count(*)`
//! counts rows). `first`/`last` are by event time (ties: first arrival wins for `first`,
//! last arrival for `last`), so they are deterministic whatever order a batch arrives in.
//! `approx_distinct` is a HyperLogLog with 2^10 registers (standard error ≈ 3.2%), the
//! estimator of Flajolet et al. with the small-range (linear counting) correction.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::error::RowError;
use crate::expr::Expr;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    First,
    Last,
    ApproxDistinct,
}

impl AggFunc {
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" | "mean" => AggFunc::Avg,
            "first" => AggFunc::First,
            "last" => AggFunc::Last,
            "approx_distinct" | "approx_count_distinct" => AggFunc::ApproxDistinct,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
            AggFunc::First => "first",
            AggFunc::Last => "last",
            AggFunc::ApproxDistinct => "approx_distinct",
        }
    }
}

/// One aggregate of a windowed aggregation: `func(input) AS alias`. `input` is `None`
/// only for `count(*)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AggSpec {
    pub func: AggFunc,
    pub input: Option<Expr>,
    pub alias: String,
}

/// A running sum: exact while it fits an i64 and all inputs are integers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SumAcc {
    Int(i64),
    Float(f64),
}

impl SumAcc {
    fn add(self, other: SumAcc) -> SumAcc {
        match (self, other) {
            (SumAcc::Int(a), SumAcc::Int(b)) => match a.checked_add(b) {
                Some(s) => SumAcc::Int(s),
                // Past i64 the sum goes on in floating point rather than failing the job.
                None => SumAcc::Float(a as f64 + b as f64),
            },
            (a, b) => SumAcc::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            SumAcc::Int(i) => i as f64,
            SumAcc::Float(f) => f,
        }
    }

    fn of(v: &Value) -> Result<SumAcc, RowError> {
        let n = match v {
            Value::Number(n) => Some(n.clone()),
            Value::String(s) => s.trim().parse::<Number>().ok(),
            _ => None,
        };
        match n {
            Some(n) => Ok(n
                .as_i64()
                .map(SumAcc::Int)
                .unwrap_or_else(|| SumAcc::Float(n.as_f64().unwrap_or(f64::NAN)))),
            None => Err(RowError::Type(format!("cannot sum {v}"))),
        }
    }

    fn to_value(self) -> Value {
        match self {
            SumAcc::Int(i) => Value::from(i),
            SumAcc::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        }
    }
}

/// The accumulator of one aggregate in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggState {
    Count(u64),
    Sum(Option<SumAcc>),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg { sum: f64, count: u64 },
    First(Option<(i64, Value)>),
    Last(Option<(i64, Value)>),
    ApproxDistinct(HyperLogLog),
}

impl AggState {
    pub fn new(func: AggFunc) -> AggState {
        match func {
            AggFunc::Count => AggState::Count(0),
            AggFunc::Sum => AggState::Sum(None),
            AggFunc::Min => AggState::Min(None),
            AggFunc::Max => AggState::Max(None),
            AggFunc::Avg => AggState::Avg { sum: 0.0, count: 0 },
            AggFunc::First => AggState::First(None),
            AggFunc::Last => AggState::Last(None),
            AggFunc::ApproxDistinct => AggState::ApproxDistinct(HyperLogLog::default()),
        }
    }

    /// Check that `value` can be taken, without changing the state. Operators check
    /// every aggregate of a row first, so a bad row changes no accumulator.
    pub fn check(&self, value: &Value) -> Result<(), RowError> {
        if value.is_null() {
            return Ok(());
        }
        match self {
            AggState::Sum(_) | AggState::Avg { .. } => SumAcc::of(value).map(|_| ()),
            AggState::Min(Some(cur)) | AggState::Max(Some(cur)) => crate::expr::order(cur, value)
                .map(|_| ())
                .ok_or_else(|| RowError::Type(format!("cannot compare {value} with {cur}"))),
            _ => Ok(()),
        }
    }

    /// Take one input value (`Value::Bool(true)` stands for a `count(*)` row).
    pub fn update(&mut self, value: &Value, event_time: i64) -> Result<(), RowError> {
        if value.is_null() {
            return Ok(());
        }
        match self {
            AggState::Count(c) => *c = c.saturating_add(1),
            AggState::Sum(acc) => {
                let v = SumAcc::of(value)?;
                *acc = Some(acc.map_or(v, |a| a.add(v)));
            }
            AggState::Avg { sum, count } => {
                *sum += SumAcc::of(value)?.as_f64();
                *count = count.saturating_add(1);
            }
            AggState::Min(cur) => keep_extreme(cur, value, std::cmp::Ordering::Less)?,
            AggState::Max(cur) => keep_extreme(cur, value, std::cmp::Ordering::Greater)?,
            AggState::First(cur) => {
                if cur.as_ref().is_none_or(|(t, _)| event_time < *t) {
                    *cur = Some((event_time, value.clone()));
                }
            }
            AggState::Last(cur) => {
                if cur.as_ref().is_none_or(|(t, _)| event_time >= *t) {
                    *cur = Some((event_time, value.clone()));
                }
            }
            AggState::ApproxDistinct(hll) => hll.insert(value),
        }
        Ok(())
    }

    /// Fold another accumulator of the same function into this one.
    pub fn merge(&mut self, other: &AggState) {
        match (self, other) {
            (AggState::Count(a), AggState::Count(b)) => *a = a.saturating_add(*b),
            (AggState::Sum(a), AggState::Sum(b)) => {
                *a = match (*a, *b) {
                    (Some(x), Some(y)) => Some(x.add(y)),
                    (x, y) => x.or(y),
                }
            }
            (AggState::Avg { sum, count }, AggState::Avg { sum: s, count: c }) => {
                *sum += s;
                *count = count.saturating_add(*c);
            }
            (AggState::Min(a), AggState::Min(Some(b))) => {
                let _ = keep_extreme(a, b, std::cmp::Ordering::Less);
            }
            (AggState::Max(a), AggState::Max(Some(b))) => {
                let _ = keep_extreme(a, b, std::cmp::Ordering::Greater);
            }
            (AggState::First(a), AggState::First(Some((t, v))))
                if a.as_ref().is_none_or(|(at, _)| t < at) =>
            {
                *a = Some((*t, v.clone()));
            }
            (AggState::Last(a), AggState::Last(Some((t, v))))
                if a.as_ref().is_none_or(|(at, _)| t >= at) =>
            {
                *a = Some((*t, v.clone()));
            }
            (AggState::ApproxDistinct(a), AggState::ApproxDistinct(b)) => a.merge(b),
            _ => {}
        }
    }

    pub fn result(&self) -> Value {
        match self {
            AggState::Count(c) => Value::from(*c),
            AggState::Sum(acc) => acc.map_or(Value::Null, SumAcc::to_value),
            AggState::Avg { sum, count } => {
                if *count == 0 {
                    Value::Null
                } else {
                    Number::from_f64(sum / *count as f64).map_or(Value::Null, Value::Number)
                }
            }
            AggState::Min(v) | AggState::Max(v) => v.clone().unwrap_or(Value::Null),
            AggState::First(v) | AggState::Last(v) => {
                v.as_ref().map_or(Value::Null, |(_, v)| v.clone())
            }
            AggState::ApproxDistinct(hll) => Value::from(hll.estimate()),
        }
    }
}

fn keep_extreme(
    cur: &mut Option<Value>,
    value: &Value,
    want: std::cmp::Ordering,
) -> Result<(), RowError> {
    match cur {
        None => *cur = Some(value.clone()),
        Some(c) => match crate::expr::order(value, c) {
            Some(o) if o == want => *cur = Some(value.clone()),
            Some(_) => {}
            None => return Err(RowError::Type(format!("cannot compare {value} with {c}"))),
        },
    }
    Ok(())
}

/// Registers are 2^P.
const HLL_P: u32 = 10;
const HLL_M: usize = 1 << HLL_P;

/// A HyperLogLog sketch. Registers are allocated on the first insert and serialize as a
/// hex string (2 KiB of text instead of a 1024-element JSON array).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HyperLogLog {
    registers: Vec<u8>,
}

impl TryFrom<String> for HyperLogLog {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Ok(HyperLogLog::default());
        }
        if s.len() != HLL_M * 2 {
            return Err(format!(
                "sketch has {} hex digits, not {}",
                s.len(),
                HLL_M * 2
            ));
        }
        let registers = (0..HLL_M)
            .map(|i| {
                s.get(i * 2..i * 2 + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "sketch is not hex".to_string())
            })
            .collect::<Result<Vec<u8>, String>>()?;
        Ok(HyperLogLog { registers })
    }
}

impl From<HyperLogLog> for String {
    fn from(h: HyperLogLog) -> String {
        h.registers.iter().map(|r| format!("{r:02x}")).collect()
    }
}

impl HyperLogLog {
    pub fn insert(&mut self, value: &Value) {
        let text = serde_json::to_string(value).unwrap_or_default();
        let hash = hash64(text.as_bytes());
        if self.registers.is_empty() {
            self.registers = vec![0; HLL_M];
        }
        let index = (hash >> (64 - HLL_P)) as usize;
        // The rank of the remaining bits; the sentinel bit bounds it at 64 - P + 1.
        let rest = (hash << HLL_P) | (1u64 << (HLL_P - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        if let Some(r) = self.registers.get_mut(index) {
            *r = (*r).max(rank);
        }
    }

    pub fn merge(&mut self, other: &HyperLogLog) {
        if other.registers.is_empty() {
            return;
        }
        if self.registers.is_empty() {
            self.registers = other.registers.clone();
            return;
        }
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    pub fn estimate(&self) -> u64 {
        if self.registers.is_empty() {
            return 0;
        }
        let m = HLL_M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

/// FNV-1a over the bytes, then the splitmix64 finalizer to spread FNV's weak high bits.
/// Our own, fixed function: a sketch restored from a snapshot keeps meaning the same.
fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(func: AggFunc, values: &[(i64, Value)]) -> Value {
        let mut s = AggState::new(func);
        for (t, v) in values {
            s.update(v, *t).unwrap();
        }
        s.result()
    }

    #[test]
    fn golden_results_ignore_nulls() {
        let vals = [
            (5, json!(3)),
            (1, json!(10)),
            (3, Value::Null),
            (9, json!(-2)),
            (9, json!(4)),
        ];
        assert_eq!(run(AggFunc::Count, &vals), json!(4));
        assert_eq!(run(AggFunc::Sum, &vals), json!(15));
        assert_eq!(run(AggFunc::Min, &vals), json!(-2));
        assert_eq!(run(AggFunc::Max, &vals), json!(10));
        assert_eq!(run(AggFunc::Avg, &vals), json!(3.75));
        assert_eq!(run(AggFunc::First, &vals), json!(10));
        assert_eq!(run(AggFunc::Last, &vals), json!(4));
        assert_eq!(
            run(AggFunc::Sum, &[(0, json!(1.5)), (0, json!("2"))]),
            json!(3.5)
        );
        assert_eq!(run(AggFunc::Sum, &[]), Value::Null);
        assert_eq!(run(AggFunc::Avg, &[]), Value::Null);
        assert_eq!(
            run(AggFunc::Sum, &[(0, json!(i64::MAX)), (0, json!(1))]),
            json!(9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            run(AggFunc::Min, &[(0, json!("b")), (0, json!("a"))]),
            json!("a")
        );
    }

    #[test]
    fn bad_inputs_are_row_errors_and_leave_state_alone() {
        let mut sum = AggState::new(AggFunc::Sum);
        assert!(sum.check(&json!("abc")).is_err());
        assert!(sum.update(&json!({"a": 1}), 0).is_err());
        assert_eq!(sum.result(), Value::Null);
        let mut min = AggState::new(AggFunc::Min);
        min.update(&json!(1), 0).unwrap();
        assert!(min.check(&json!([1])).is_err());
        assert_eq!(min.result(), json!(1));
    }

    #[test]
    fn merge_equals_one_pass() {
        let vals: Vec<(i64, Value)> = (0..40).map(|i| (i % 7, json!(i * 3 % 11))).collect();
        for func in [
            AggFunc::Count,
            AggFunc::Sum,
            AggFunc::Min,
            AggFunc::Max,
            AggFunc::Avg,
            AggFunc::First,
            AggFunc::Last,
            AggFunc::ApproxDistinct,
        ] {
            let (a, b) = vals.split_at(17);
            let mut left = AggState::new(func);
            let mut right = AggState::new(func);
            for (t, v) in a {
                left.update(v, *t).unwrap();
            }
            for (t, v) in b {
                right.update(v, *t).unwrap();
            }
            left.merge(&right);
            assert_eq!(left.result(), run(func, &vals), "{}", func.name());
        }
    }

    #[test]
    fn approx_distinct_is_within_a_few_percent() {
        for n in [0u64, 1, 10, 1_000, 50_000] {
            let mut h = HyperLogLog::default();
            for i in 0..n {
                h.insert(&json!(format!("user-{i}")));
                h.insert(&json!(format!("user-{i}"))); // duplicates do not count
            }
            let est = h.estimate() as f64;
            let err = if n == 0 {
                est
            } else {
                (est - n as f64).abs() / n as f64
            };
            assert!(err <= 0.06, "n={n} estimate={est}");
        }
    }

    #[test]
    fn sketch_round_trips_through_serde() {
        let mut s = AggState::new(AggFunc::ApproxDistinct);
        for i in 0..500 {
            s.update(&json!(i), 0).unwrap();
        }
        let text = serde_json::to_string(&s).unwrap();
        let back: AggState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<HyperLogLog>("\"zz\"").is_err());
    }
}
