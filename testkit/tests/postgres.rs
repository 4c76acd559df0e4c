//! The throwaway PostgreSQL of `rivulet_testkit::postgres` starts, answers SQL that
//! writes and reads back, and is gone after drop.

use rivulet_testkit::postgres::TestPostgres;

#[test]
fn test_postgres_runs_sql_and_stops_on_drop() {
    let Some(pg) = TestPostgres::start_or_skip() else {
        return;
    };
    pg.create_database("kit");
    pg.psql("kit", "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)");
    pg.psql("kit", "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    assert_eq!(
        pg.psql("kit", "SELECT id, name FROM t ORDER BY id"),
        "1|a\n2|b\n"
    );
    let port = pg.port();
    drop(pg);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens after drop"
    );
}
