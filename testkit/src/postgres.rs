//! A throwaway PostgreSQL server for tests: a real `postgres`, never a mock.
//!
//! [`TestPostgres::start`] runs `initdb` into a fresh temp dir and `pg_ctl start`s a
//! server on a free loopback port with its socket in that dir; dropping the value stops
//! it (`pg_ctl stop -m immediate`) and removes the dir. Trust authentication, user
//! `rivulet`, database `postgres`; `fsync=off` because the tests kill clients, not the
//! server.
//!
//! Binaries: `$RIVULET_PG_BIN` if set, else the newest `/usr/lib/postgresql/<ver>/bin`
//! (Debian's `postgresql` package, installed by `scripts/ci-setup.sh`), else `initdb`
//! on `PATH`. PostgreSQL refuses to run as root, and CI runs as root: then the temp dir
//! is chowned to the `postgres` system user and every command runs as that user through
//! `runuser -u postgres --`. A developer who is not root runs them directly.
//!
//! A missing PostgreSQL fails the test (a silent skip hid gaps before) unless
//! `RIVULET_SKIP_MISSING_CLIENTS=1`: then [`TestPostgres::start_or_skip`] returns
//! `None` with a warning.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::ports::free_port_block;

/// The opt-out shared with the Python client tests.
pub const SKIP_MISSING: &str = "RIVULET_SKIP_MISSING_CLIENTS";
/// The superuser the tests connect as.
pub const USER: &str = "rivulet";

/// A running PostgreSQL server in a temp dir, stopped when dropped.
pub struct TestPostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres_user: bool,
}

/// Where the PostgreSQL server binaries are, if installed.
pub fn find_bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RIVULET_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

impl TestPostgres {
    /// Start a server, or panic saying why (PostgreSQL missing included).
    pub fn start() -> TestPostgres {
        let Some(bin) = find_bin_dir() else {
            panic!(
                "PostgreSQL is not installed (no /usr/lib/postgresql/<ver>/bin/initdb, no initdb \
                 on PATH): run scripts/ci-setup.sh, set RIVULET_PG_BIN, or set {SKIP_MISSING}=1 \
                 to skip"
            );
        };
        TestPostgres::start_with(bin)
    }

    /// Like [`start`](Self::start), but `None` (with a warning) when PostgreSQL is
    /// missing and `RIVULET_SKIP_MISSING_CLIENTS=1`.
    pub fn start_or_skip() -> Option<TestPostgres> {
        if find_bin_dir().is_none() && std::env::var(SKIP_MISSING).is_ok_and(|v| v == "1") {
            eprintln!("warning: PostgreSQL is not installed; skipped ({SKIP_MISSING}=1)");
            return None;
        }
        Some(TestPostgres::start())
    }

    fn start_with(bin: PathBuf) -> TestPostgres {
        let dir = tempfile::tempdir().expect("create a temp dir for PostgreSQL");
        let as_postgres_user = rustix::process::geteuid().is_root();
        if as_postgres_user {
            chown_to_postgres(dir.path());
        }
        let pg = TestPostgres {
            bin,
            dir,
            // Below the ephemeral range: an outgoing connection of another
            // test cannot take it before the server binds it (seen in CI:
            // "could not bind ... Address already in use").
            port: free_port_block(&[0]),
            as_postgres_user,
        };
        let data = pg.data_dir();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", describe(&out));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            pg.port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("postgres.log");
        let out = pg.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\nserver log:\n{}",
            describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run one of the server binaries, as the `postgres` user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        cmd.args(args)
            // The server inherits the client's cwd; root's may be unreadable to it.
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://rivulet@127.0.0.1:<port>/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Create a database (with `createdb`); returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", USER, name],
        );
        assert!(out.status.success(), "createdb {name}: {}", describe(&out));
        self.url_for(name)
    }

    /// Run SQL with `psql` and return its unaligned, tuples-only output (fields split by
    /// `|`), for tests that read tables back without a client library.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                USER,
                "-d",
                database,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        assert!(out.status.success(), "psql {sql:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.data_dir().display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn chown_to_postgres(dir: &Path) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "running as root needs a `postgres` system user (Debian's postgresql package \
             creates it): {}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id prints a number")
    };
    std::os::unix::fs::chown(dir, Some(id("-u")), Some(id("-g")))
        .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.display()));
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
