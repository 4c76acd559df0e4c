//! The PostgreSQL sink against a real server (rivulet_testkit::postgres): write modes,
//! table creation, and the exactly-once commit of rows + offsets + batch id in one
//! transaction, read back with psql.

use std::collections::BTreeMap;

use rivulet_streams::plan::{Guarantee, WriteMode};
use rivulet_streams::runtime::postgres::{BatchCommit, PostgresSink};
use rivulet_streams::runtime::{Offsets, RuntimeError};
use rivulet_streams::Row;
use rivulet_testkit::postgres::TestPostgres;
use serde_json::{json, Value};

fn row(v: Value) -> Row {
    match v {
        Value::Object(m) => Row::new(m, 0),
        other => panic!("not an object: {other}"),
    }
}

async fn sink(url: &str, table: &str, mode: WriteMode, key: &[&str], g: Guarantee) -> PostgresSink {
    let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
    PostgresSink::connect("out", "job1", url, table, mode, &key, g)
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_modes_create_the_table_and_map_fields_to_columns() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let url = pg.create_database("modes");

    let mut s = sink(
        &url,
        "plain",
        WriteMode::Insert,
        &[],
        Guarantee::AtLeastOnce,
    )
    .await;
    s.write(
        &[
            row(json!({"id": 1, "name": "a", "amount": 2.5, "tags": ["x"]})),
            row(json!({"id": 2, "name": "b", "amount": 3})),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        pg.psql(
            "modes",
            "SELECT column_name || ':' || data_type FROM information_schema.columns \
             WHERE table_name = 'plain' ORDER BY ordinal_position"
        ),
        "amount:double precision\nid:bigint\nname:text\ntags:jsonb\n"
    );
    // A later row with an unknown field: the field is ignored, the rest written.
    s.write(&[row(json!({"id": 3, "extra": true}))], None)
        .await
        .unwrap();
    assert_eq!(
        pg.psql(
            "modes",
            "SELECT id, name, amount, tags FROM plain ORDER BY id"
        ),
        "1|a|2.5|[\"x\"]\n2|b|3|\n3|||\n"
    );

    let mut s = sink(
        &url,
        "up",
        WriteMode::Upsert,
        &["id"],
        Guarantee::AtLeastOnce,
    )
    .await;
    s.write(
        &[
            row(json!({"id": 1, "v": "a"})),
            row(json!({"id": 2, "v": "b"})),
        ],
        None,
    )
    .await
    .unwrap();
    s.write(
        &[
            row(json!({"id": 1, "v": "c"})),
            row(json!({"id": 1, "v": "d"})),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        pg.psql("modes", "SELECT id, v FROM up ORDER BY id"),
        "1|d\n2|b\n"
    );

    let mut s = sink(
        &url,
        "ign",
        WriteMode::InsertIgnore,
        &["id"],
        Guarantee::AtLeastOnce,
    )
    .await;
    s.write(
        &[
            row(json!({"id": 1, "v": "first"})),
            row(json!({"id": 1, "v": "dup"})),
        ],
        None,
    )
    .await
    .unwrap();
    s.write(&[row(json!({"id": 1, "v": "replay"}))], None)
        .await
        .unwrap();
    assert_eq!(pg.psql("modes", "SELECT id, v FROM ign"), "1|first\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_commits_rows_offsets_and_batch_together_and_fences_zombies() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    let url = pg.create_database("eo");
    let mut s = sink(
        &url,
        "t",
        WriteMode::Insert,
        &["id"],
        Guarantee::ExactlyOnce,
    )
    .await;
    assert_eq!(s.resume_point().await.unwrap(), None);

    let mut offsets = Offsets::new();
    offsets.insert("events".into(), BTreeMap::from([(0, 5), (1, 3)]));
    let snapshot = json!({"watermarks": {}, "operators": {}});
    s.write(
        &[row(json!({"id": 1})), row(json!({"id": 2}))],
        Some(BatchCommit {
            batch_id: 1,
            previous_batch_id: 0,
            offsets: &offsets,
            snapshot: &snapshot,
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        pg.psql(
            "eo",
            "SELECT job, topic, partition, next_offset, batch_id FROM rivulet_stream_offsets \
             ORDER BY partition"
        ),
        "job1|events|0|5|1\njob1|events|1|3|1\n"
    );

    // A second instance reads what the database has.
    let mut other = sink(
        &url,
        "t",
        WriteMode::Insert,
        &["id"],
        Guarantee::ExactlyOnce,
    )
    .await;
    let resume = other.resume_point().await.unwrap().expect("a resume point");
    assert_eq!((resume.batch_id, &resume.offsets), (1, &offsets));
    assert_eq!(resume.snapshot, Some(snapshot.clone()));

    // The first instance commits batch 2; the second, which resumed at 1, is fenced and
    // its rows and offsets are not written.
    offsets.insert("events".into(), BTreeMap::from([(0, 6), (1, 3)]));
    s.write(
        &[row(json!({"id": 3}))],
        Some(BatchCommit {
            batch_id: 2,
            previous_batch_id: 1,
            offsets: &offsets,
            snapshot: &snapshot,
        }),
    )
    .await
    .unwrap();
    let mut stale = Offsets::new();
    stale.insert("events".into(), BTreeMap::from([(0, 99)]));
    let err = other
        .write(
            &[row(json!({"id": 3})), row(json!({"id": 4}))],
            Some(BatchCommit {
                batch_id: 2,
                previous_batch_id: 1,
                offsets: &stale,
                snapshot: &snapshot,
            }),
        )
        .await
        .expect_err("a zombie instance must be fenced");
    assert!(matches!(err, RuntimeError::PostgresState { .. }), "{err}");
    assert_eq!(pg.psql("eo", "SELECT id FROM t ORDER BY id"), "1\n2\n3\n");
    assert_eq!(
        pg.psql(
            "eo",
            "SELECT next_offset, batch_id FROM rivulet_stream_offsets WHERE partition = 0"
        ),
        "6|2\n"
    );

    // A batch that fails mid-way (a duplicate primary key) writes nothing, offsets
    // included.
    let err = s
        .write(
            &[row(json!({"id": 1}))],
            Some(BatchCommit {
                batch_id: 3,
                previous_batch_id: 2,
                offsets: &stale,
                snapshot: &snapshot,
            }),
        )
        .await
        .expect_err("duplicate key");
    assert!(matches!(err, RuntimeError::Postgres { .. }), "{err}");
    assert_eq!(
        pg.psql(
            "eo",
            "SELECT batch_id, count(*) FROM rivulet_stream_offsets GROUP BY batch_id"
        ),
        "2|2\n"
    );
}
