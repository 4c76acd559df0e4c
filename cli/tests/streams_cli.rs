//! `rivulet stream` as a user runs it: `validate` and `explain` on good and bad job
//! files, and `run` with the `available_now` and `once` triggers against a real
//! `rivulet` broker process with a console sink: the job stops by itself once caught
//! up, prints exactly the filtered events, resumes from its checkpoint on the next run,
//! and refuses another job's checkpoint.

use std::path::Path;
use std::time::Duration;

use rdkafka::producer::FutureRecord;
use rivulet_testkit::dirs::temp_dir;
use rivulet_testkit::kafka::{block_on, create_topic, producer};
use rivulet_testkit::process::{run, BrokerProcess, Run};

const RIVULET: &str = env!("CARGO_BIN_EXE_rivulet");
const TIMEOUT: Duration = Duration::from_secs(20);
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn rivulet(args: &[&str]) -> Run {
    run(Path::new(RIVULET), args, "", RUN_LIMIT)
}

fn job(name: &str, trigger: &str) -> String {
    format!(
        r#"[job]
name = "{name}"
trigger = "{trigger}"

[[source]]
name = "clicks"
topics = ["clicks"]
start = "earliest"

[[operator]]
type = "filter"
where = "n % 2 = 0"

[[sink]]
type = "console"
"#
    )
}

fn produce(bootstrap: &str, from: i64, to: i64) {
    let p = producer(bootstrap, &[]);
    block_on(async {
        for n in from..to {
            let v = format!(r#"{{"n":{n}}}"#);
            p.send(
                FutureRecord::<(), String>::to("clicks").payload(&v),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
        }
    });
}

fn printed(run: &Run) -> Vec<i64> {
    let mut ns: Vec<i64> = run
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["n"].as_i64().expect("n")
        })
        .collect();
    ns.sort_unstable();
    ns
}

#[test]
fn validate_and_explain_report_good_and_bad_job_files() {
    let lab1 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/streams/lab1-filter-to-postgres.toml"
    );
    let r = rivulet(&["stream", "validate", lab1]);
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stdout.contains("job lab1-purchases is valid"),
        "{}",
        r.stdout
    );

    let r = rivulet(&["stream", "explain", lab1]);
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("filter where type = 'purchase' AND amount > 0")
            && r.stdout.contains("postgres table purchases"),
        "{}",
        r.stdout
    );

    // The medallion job (Kafka, files and PostgreSQL sinks, three exactly-once) runs.
    let medallion = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/streams/medallion.toml"
    );
    let r = rivulet(&["stream", "validate", medallion]);
    assert!(r.success, "{}", r.stderr);
    assert!(!r.stderr.contains("cannot run it yet"), "{}", r.stderr);

    // Valid, but this build cannot run it (Parquet needs the `parquet` feature): valid,
    // with a note.
    let text = std::fs::read_to_string(medallion)
        .expect("read the medallion job")
        .replace("format = \"jsonl\"", "format = \"parquet\"");
    assert!(text.contains("parquet"), "the medallion job changed shape");
    let dir = temp_dir();
    let parquet = dir.path().join("parquet.toml");
    std::fs::write(&parquet, text).expect("write the job");
    let r = rivulet(&["stream", "validate", parquet.to_str().expect("a path")]);
    assert!(r.success, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot run it yet") && r.stderr.contains("parquet"),
        "{}",
        r.stderr
    );

    let dir = temp_dir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, job("x", "once").replace("n % 2 = 0", "n % = 0")).unwrap();
    let bad = bad.to_str().unwrap();
    for cmd in ["validate", "explain", "run"] {
        let r = rivulet(&["stream", cmd, bad]);
        assert!(!r.success, "{cmd} accepted a bad expression");
        assert!(r.stderr.contains("bad.toml"), "{cmd}: {}", r.stderr);
    }
    let r = rivulet(&["stream", "validate", "/nonexistent/job.toml"]);
    assert!(
        !r.success && r.stderr.contains("cannot read job file"),
        "{}",
        r.stderr
    );
}

#[test]
fn run_available_now_and_once_stop_by_themselves_and_resume_from_the_checkpoint() {
    let work = temp_dir();
    let broker = BrokerProcess::start_in(
        Path::new(RIVULET),
        temp_dir(),
        work.path().join("broker.log"),
        &[],
        &[],
        TIMEOUT,
    );
    let bootstrap = broker.bootstrap();
    block_on(create_topic(&bootstrap, "clicks", 2, &[]));
    produce(&bootstrap, 0, 40);

    let write = |name: &str, text: String| {
        let p = work.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let checkpoint = work.path().join("cp");
    let cp = checkpoint.to_str().unwrap();
    let available = write("available.toml", job("clicks-even", "available_now"));
    let args = |file: &str| -> Run {
        rivulet(&[
            "-b",
            &bootstrap,
            "stream",
            "run",
            file,
            "--checkpoint-dir",
            cp,
            "--max-batch-records",
            "7",
        ])
    };

    // Several batches (7 records each), then the job stops by itself.
    let r = args(&available);
    assert!(r.success, "{}", r.stderr);
    assert_eq!(
        printed(&r),
        (0..40).filter(|n| n % 2 == 0).collect::<Vec<_>>()
    );
    assert!(r.stderr.contains("batches"), "{}", r.stderr);

    // Nothing new: the checkpoint says everything was read.
    let r = args(&available);
    assert!(r.success, "{}", r.stderr);
    assert_eq!(printed(&r), Vec::<i64>::new());

    // `once`: one batch of what is there now, from the checkpoint on.
    produce(&bootstrap, 40, 46);
    let once = write("once.toml", job("clicks-even", "once"));
    let r = rivulet(&[
        "-b",
        &bootstrap,
        "stream",
        "run",
        &once,
        "--checkpoint-dir",
        cp,
    ]);
    assert!(r.success, "{}", r.stderr);
    assert_eq!(printed(&r), vec![40, 42, 44]);

    // Another job may not use this checkpoint.
    let other = write("other.toml", job("someone-else", "once"));
    let r = rivulet(&[
        "-b",
        &bootstrap,
        "stream",
        "run",
        &other,
        "--checkpoint-dir",
        cp,
    ]);
    assert!(!r.success, "another job's checkpoint was accepted");
    assert!(
        r.stderr.contains("belongs to job clicks-even"),
        "{}",
        r.stderr
    );
    drop(broker);
}

#[test]
fn start_by_timestamp_and_interval_trigger_stopped_by_sigterm() {
    use std::process::{Command, Stdio};

    use rivulet_testkit::process::{send_signal, Signal};

    let work = temp_dir();
    let broker = BrokerProcess::start_in(
        Path::new(RIVULET),
        temp_dir(),
        work.path().join("broker.log"),
        &[],
        &[],
        TIMEOUT,
    );
    let bootstrap = broker.bootstrap();
    block_on(create_topic(&bootstrap, "clicks", 1, &[]));
    produce(&bootstrap, 0, 10);

    // A start time after every record: nothing to read; one before all: everything.
    for (start, want) in [
        ("2999-01-01T00:00:00Z", vec![]),
        ("2000-01-01T00:00:00Z", vec![0, 2, 4, 6, 8]),
    ] {
        let text = job("by-time", "available_now")
            .replace("start = \"earliest\"", &format!("start = \"{start}\""));
        let file = work.path().join("time.toml");
        std::fs::write(&file, text).unwrap();
        let cp = temp_dir();
        let r = rivulet(&[
            "-b",
            &bootstrap,
            "stream",
            "run",
            file.to_str().unwrap(),
            "--checkpoint-dir",
            cp.path().to_str().unwrap(),
        ]);
        assert!(r.success, "{}", r.stderr);
        assert_eq!(printed(&r), want, "start = {start}");
    }

    // An interval trigger runs until SIGTERM, which stops it cleanly between batches.
    let file = work.path().join("interval.toml");
    std::fs::write(&file, job("every-200ms", "200ms")).unwrap();
    let cp = temp_dir();
    let out = work.path().join("interval.out");
    let child = Command::new(RIVULET)
        .args(["-b", &bootstrap, "stream", "run"])
        .arg(&file)
        .arg("--checkpoint-dir")
        .arg(cp.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while read(&out).lines().count() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "no output: {}",
            read(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    produce(&bootstrap, 10, 12);
    while read(&out).lines().count() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "no new output: {}",
            read(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send_signal(child.id(), Signal::TERM).unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(read(&out).lines().count(), 6);
    drop(broker);
}
