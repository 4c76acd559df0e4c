//! Golden tests of windowed aggregation: out-of-order and late events, session merges,
//! output modes, limits and snapshot round trips.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::aggregate::AggFunc;
use crate::expr::Expr;
use crate::time::Watermark;

fn agg(func: AggFunc, input: Option<&str>, alias: &str) -> AggSpec {
    AggSpec {
        func,
        input: input.map(|t| Expr::parse(t).unwrap()),
        alias: alias.into(),
    }
}

fn op(
    window: WindowSpec,
    mode: OutputMode,
    late: LatePolicy,
    max_windows: usize,
) -> WindowedAggregation {
    WindowedAggregation::new(WindowAggConfig {
        name: "agg".into(),
        window,
        aggs: vec![
            agg(AggFunc::Count, None, "n"),
            agg(AggFunc::Sum, Some("amount"), "total"),
            agg(AggFunc::Max, Some("amount"), "biggest"),
            agg(AggFunc::Last, Some("amount"), "last"),
        ],
        mode,
        late,
        max_windows,
    })
}

fn ev(user: &str, amount: i64, t: i64) -> Row {
    let Value::Object(map) = json!({"user": user, "amount": amount}) else {
        unreachable!()
    };
    let mut row = Row::new(map, t);
    row.key = Key(vec![("user".into(), json!(user))]);
    row
}

/// Drive like the runtime: process with the old watermark, advance, close windows.
fn batch(op: &mut WindowedAggregation, wm: &mut Watermark, rows: Vec<Row>) -> Output {
    let ctx = TimeContext {
        watermark: wm.current(),
        processing_time_ms: 0,
    };
    let times: Vec<i64> = rows.iter().map(|r| r.event_time).collect();
    let mut out = op.process(rows, &ctx).unwrap();
    times.into_iter().for_each(|t| wm.observe(t));
    if let Some(w) = wm.current() {
        out.extend(op.on_watermark(w).unwrap());
    }
    out
}

fn values(out: &Output) -> Vec<Value> {
    out.rows
        .iter()
        .map(|r| Value::Object(r.value.clone()))
        .collect()
}

const MIN: i64 = 60_000;

#[test]
fn tumbling_append_emits_each_window_once_when_the_watermark_passes() {
    let mut a = op(
        WindowSpec::Tumbling { size_ms: MIN },
        OutputMode::Append,
        LatePolicy::Drop,
        100,
    );
    let mut wm = Watermark::new(10_000);
    // Out of order inside the first minute.
    let out = batch(
        &mut a,
        &mut wm,
        vec![
            ev("ana", 5, 30_000),
            ev("ana", 7, 10_000),
            ev("bo", 1, 50_000),
        ],
    );
    assert!(
        out.rows.is_empty(),
        "nothing closes before the watermark passes 60s"
    );
    // Watermark becomes 65s: the first minute closes.
    let out = batch(
        &mut a,
        &mut wm,
        vec![ev("ana", 2, 75_000), ev("ana", 3, 55_000)],
    );
    assert_eq!(
        values(&out),
        vec![
            json!({"user": "ana", "window_start": "1970-01-01T00:00:00.000Z", "window_end": "1970-01-01T00:01:00.000Z", "n": 3, "total": 15, "biggest": 7, "last": 3}),
            json!({"user": "bo", "window_start": "1970-01-01T00:00:00.000Z", "window_end": "1970-01-01T00:01:00.000Z", "n": 1, "total": 1, "biggest": 1, "last": 1}),
        ]
    );
    assert_eq!(out.rows[0].event_time, MIN - 1);
    // A late event for the closed minute is dropped and counted; nothing re-emitted.
    let out = batch(&mut a, &mut wm, vec![ev("ana", 100, 59_000)]);
    assert!(out.rows.is_empty());
    assert_eq!(out.late_dropped, 1);
    assert_eq!(a.open_windows(), 1);
}

#[test]
fn late_events_can_be_dead_lettered_with_the_reason() {
    let mut a = op(
        WindowSpec::Tumbling { size_ms: MIN },
        OutputMode::Append,
        LatePolicy::DeadLetter,
        100,
    );
    let mut wm = Watermark::new(0);
    batch(&mut a, &mut wm, vec![ev("ana", 1, 2 * MIN)]);
    let out = batch(&mut a, &mut wm, vec![ev("ana", 1, 10)]);
    assert_eq!(out.late_dropped, 0);
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(
        out.dead_letters[0].reason,
        "late: event time 10 is behind the watermark 120000"
    );
}

#[test]
fn sliding_event_counts_in_its_open_windows_after_older_ones_closed() {
    let spec = WindowSpec::Sliding {
        size_ms: 10,
        slide_ms: 5,
    };
    let mut a = op(spec, OutputMode::Append, LatePolicy::Drop, 100);
    let mut wm = Watermark::new(0);
    let out = batch(&mut a, &mut wm, vec![ev("a", 1, 3), ev("a", 2, 7)]);
    // Watermark 7 closes [-5,5): holds the t=3 event.
    assert_eq!(values(&out).len(), 1);
    assert_eq!(out.rows[0].value["n"], json!(1));
    // t=6 < watermark 7 but its windows [0,10) and [5,15) are still open: it counts.
    let out = batch(&mut a, &mut wm, vec![ev("a", 4, 6), ev("a", 0, 30)]);
    assert_eq!(out.late_dropped, 0);
    let totals: Vec<(Value, Value)> = out
        .rows
        .iter()
        .map(|r| (r.value["window_start"].clone(), r.value["total"].clone()))
        .collect();
    assert_eq!(
        totals,
        vec![
            (json!("1970-01-01T00:00:00.000Z"), json!(7)), // [0,10): t=3,7,6
            (json!("1970-01-01T00:00:00.005Z"), json!(6)), // [5,15): t=7,6
        ]
    );
}

#[test]
fn sessions_merge_when_an_event_bridges_them() {
    let mut a = op(
        WindowSpec::Session { gap_ms: 10 },
        OutputMode::Append,
        LatePolicy::Drop,
        100,
    );
    let mut wm = Watermark::new(100);
    batch(
        &mut a,
        &mut wm,
        vec![ev("a", 1, 0), ev("a", 2, 25), ev("b", 5, 3)],
    );
    assert_eq!(a.open_windows(), 3, "a:[0,10) a:[25,35) b:[3,13)");
    // [14,24) overlaps nothing; then [18,28) overlaps it and [25,35): a:[14,35).
    batch(&mut a, &mut wm, vec![ev("a", 3, 14), ev("a", 4, 18)]);
    assert_eq!(a.open_windows(), 3);
    // [9,19) bridges a:[0,10) and a:[14,35) into one session.
    batch(&mut a, &mut wm, vec![ev("a", 10, 9), ev("a", 20, 22)]);
    assert_eq!(a.open_windows(), 2, "a:[0,35) and b:[3,13)");
    let out = batch(&mut a, &mut wm, vec![ev("z", 0, 1_000)]);
    assert_eq!(
        values(&out),
        vec![
            json!({"user": "a", "window_start": "1970-01-01T00:00:00.000Z", "window_end": "1970-01-01T00:00:00.035Z", "n": 6, "total": 40, "biggest": 20, "last": 2}),
            json!({"user": "b", "window_start": "1970-01-01T00:00:00.003Z", "window_end": "1970-01-01T00:00:00.013Z", "n": 1, "total": 5, "biggest": 5, "last": 5}),
        ]
    );
}

#[test]
fn update_mode_emits_changed_windows_each_batch() {
    let mut a = op(
        WindowSpec::Tumbling { size_ms: MIN },
        OutputMode::Update,
        LatePolicy::Drop,
        100,
    );
    let mut wm = Watermark::new(MIN);
    let out = batch(
        &mut a,
        &mut wm,
        vec![ev("ana", 5, 1_000), ev("bo", 1, 2_000), ev("ana", 1, 3_000)],
    );
    let n: Vec<(Value, Value)> = out
        .rows
        .iter()
        .map(|r| (r.value["user"].clone(), r.value["n"].clone()))
        .collect();
    assert_eq!(n, vec![(json!("ana"), json!(2)), (json!("bo"), json!(1))]);
    let out = batch(&mut a, &mut wm, vec![ev("ana", 5, 4_000)]);
    assert_eq!(values(&out).len(), 1, "only the changed window");
    assert_eq!(out.rows[0].value["total"], json!(11));
    // Closing emits nothing more in update mode, and releases state.
    let out = batch(&mut a, &mut wm, vec![ev("cy", 1, 3 * MIN)]);
    assert_eq!(values(&out).len(), 1);
    assert_eq!(out.rows[0].value["user"], json!("cy"));
    assert_eq!(a.open_windows(), 1);
}

#[test]
fn bad_inputs_are_dead_lettered_without_touching_state() {
    let mut a = op(
        WindowSpec::Tumbling { size_ms: MIN },
        OutputMode::Update,
        LatePolicy::Drop,
        100,
    );
    let mut wm = Watermark::new(MIN);
    let Value::Object(map) = json!({"user": "ana", "amount": "lots"}) else {
        unreachable!()
    };
    let out = batch(
        &mut a,
        &mut wm,
        vec![ev("ana", 5, 1_000), Row::new(map, 1_000)],
    );
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.rows[0].value["n"], json!(1));
}

#[test]
fn window_limit_fails_the_job_with_a_clear_error() {
    let mut a = op(
        WindowSpec::Tumbling { size_ms: MIN },
        OutputMode::Append,
        LatePolicy::Drop,
        2,
    );
    let ctx = TimeContext::default();
    a.process(vec![ev("a", 1, 0), ev("b", 1, 0), ev("a", 1, 1)], &ctx)
        .unwrap();
    let err = a.process(vec![ev("c", 1, 0)], &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator agg: windows state exceeds its limit of 2 (raise max_windows)"
    );
    let mut s = op(
        WindowSpec::Session { gap_ms: 5 },
        OutputMode::Append,
        LatePolicy::Drop,
        1,
    );
    s.process(vec![ev("a", 1, 0), ev("a", 1, 3)], &ctx).unwrap(); // merges: still one
    assert!(s.process(vec![ev("a", 1, 100)], &ctx).is_err());
}

#[test]
fn snapshot_restore_continues_where_it_left_off() {
    let spec = WindowSpec::Session { gap_ms: 10 };
    let mut a = op(spec, OutputMode::Append, LatePolicy::Drop, 100);
    let mut wm = Watermark::new(50);
    batch(
        &mut a,
        &mut wm,
        vec![ev("a", 1, 0), ev("a", 2, 5), ev("b", 3, 7)],
    );
    let snap = a.snapshot().unwrap();
    // Through text, as a checkpoint file would carry it.
    let text = serde_json::to_string(&snap).unwrap();
    let mut restored = op(spec, OutputMode::Append, LatePolicy::Drop, 100);
    restored
        .restore(serde_json::from_str(&text).unwrap())
        .unwrap();
    let mut wm2 = wm.clone();
    let expected = batch(&mut a, &mut wm, vec![ev("a", 4, 12), ev("z", 0, 500)]);
    let got = batch(
        &mut restored,
        &mut wm2,
        vec![ev("a", 4, 12), ev("z", 0, 500)],
    );
    assert_eq!(values(&got), values(&expected));
    assert_eq!(got.rows[0].value["total"], json!(7));
    // A snapshot of an operator with other aggregates is refused.
    let mut other = WindowedAggregation::new(WindowAggConfig {
        name: "other".into(),
        window: spec,
        aggs: vec![agg(AggFunc::Count, None, "n")],
        mode: OutputMode::Append,
        late: LatePolicy::Drop,
        max_windows: 100,
    });
    assert!(matches!(
        other.restore(snap),
        Err(StreamError::BadSnapshot { .. })
    ));
}

/// Sessions from sorted event times, the brute-force way.
fn expected_sessions(mut times: Vec<i64>, gap: i64) -> Vec<(i64, i64, usize)> {
    times.sort_unstable();
    let mut sessions: Vec<(i64, i64, usize)> = Vec::new();
    for t in times {
        match sessions.last_mut() {
            Some(last) if t < last.1 => {
                last.1 = last.1.max(t + gap);
                last.2 += 1;
            }
            _ => sessions.push((t, t + gap, 1)),
        }
    }
    sessions
}

proptest! {
    /// Whatever order events arrive in (and however they are batched), merging sessions
    /// ends with the sessions of the sorted events, each counting its events.
    #[test]
    fn session_merging_is_order_independent(
        times in proptest::collection::vec(0i64..1_000, 1..40),
        gap in 1i64..50,
        split in 0usize..40,
    ) {
        let mut a = op(WindowSpec::Session { gap_ms: gap }, OutputMode::Append, LatePolicy::Drop, 1_000);
        let ctx = TimeContext::default();
        let rows: Vec<Row> = times.iter().map(|t| ev("k", 1, *t)).collect();
        let split = split.min(rows.len());
        let (first, second) = rows.split_at(split);
        a.process(first.to_vec(), &ctx).unwrap();
        a.process(second.to_vec(), &ctx).unwrap();
        let out = a.on_watermark(i64::MAX).unwrap();
        let got: Vec<(Value, Value, Value)> = out.rows.iter().map(|r| (
            r.value["window_start"].clone(), r.value["window_end"].clone(), r.value["n"].clone())).collect();
        let want: Vec<(Value, Value, Value)> = expected_sessions(times, gap).into_iter().map(|(s, e, n)| (
            format_millis(s), format_millis(e), json!(n))).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(a.open_windows(), 0);
    }

    /// Sliding-window counts equal a brute-force count of events per window.
    #[test]
    fn sliding_counts_match_brute_force(
        times in proptest::collection::vec(0i64..200, 1..50),
        slide in 1i64..20,
        factor in 1i64..5,
    ) {
        let size = slide * factor;
        let mut a = op(WindowSpec::Sliding { size_ms: size, slide_ms: slide }, OutputMode::Append, LatePolicy::Drop, 10_000);
        a.process(times.iter().map(|t| ev("k", 1, *t)).collect(), &TimeContext::default()).unwrap();
        let out = a.on_watermark(i64::MAX).unwrap();
        for r in &out.rows {
            let start = crate::time::parse_rfc3339(r.value["window_start"].as_str().unwrap()).unwrap();
            let n = times.iter().filter(|t| **t >= start && **t < start + size).count();
            prop_assert_eq!(&r.value["n"], &json!(n));
        }
        let windows: std::collections::BTreeSet<i64> = times.iter()
            .flat_map(|t| WindowSpec::Sliding { size_ms: size, slide_ms: slide }.assign(*t))
            .map(|w| w.start).collect();
        prop_assert_eq!(out.rows.len(), windows.len());
    }
}
