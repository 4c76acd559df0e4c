//! The `records` fuzz target's seeds, committed corpus (fuzz/corpus/records)
//! and regressions (fuzz/regressions/records), replayed on stable through
//! the harness the fuzz target runs (fuzz/src/records.rs): the record-batch
//! view, the record codec and every compression codec, with the same checks
//! — among them that a decompression bomb is refused with the heap grown by
//! about twice the limit at most, measured by the harness's counting
//! allocator installed here as in the fuzz target.
//!
//! `cargo test -p rivulet-protocol --test fuzz_corpus -- --ignored` rewrites
//! the committed seeds (scripts/fuzz.sh seeds).

#[path = "../../fuzz/src/records.rs"]
mod records;
#[path = "../../fuzz/src/sasl.rs"]
mod sasl;

use std::sync::Mutex;

#[global_allocator]
static ALLOC: records::meter::Meter = records::meter::Meter;

/// The tests take turns (the meter is per thread, but the bomb test's
/// buffers are large: one at a time keeps the process's peak small).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `sasl` target's seeds, committed corpus and regressions: the SASL
/// parsers and SCRAM exchanges with the harness's checks (above all, that
/// no exchange authenticates without the right proof).
#[test]
fn sasl_corpus_and_regressions_run_clean() {
    for (name, data) in sasl::seeds() {
        eprintln!("seed {name}");
        sasl::run(&data);
    }
    for (path, data) in &rivulet_testkit::fuzz::replay_inputs("sasl", 20) {
        eprintln!("{}", path.display());
        sasl::run(data);
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus/sasl (scripts/fuzz.sh seeds)"]
fn write_sasl_seeds() {
    rivulet_testkit::fuzz::write_seeds("sasl", &sasl::seeds());
}

#[test]
fn records_corpus_and_regressions_run_clean() {
    let _turn = serial();
    for (name, data) in records::seeds() {
        eprintln!("seed {name}");
        records::run(&data);
    }
    for (path, data) in &rivulet_testkit::fuzz::replay_inputs("records", 20) {
        eprintln!("{}", path.display());
        records::run(data);
    }
    assert!(
        records::meter::installed(),
        "the heap meter measured nothing"
    );
}

#[test]
fn the_heap_meter_sees_an_allocation() {
    let _turn = serial();
    let (v, heap) = records::meter::measure(|| vec![1u8; 1 << 20]);
    assert_eq!(v.len(), 1 << 20);
    assert!(heap >= 1 << 20, "measured {heap} bytes");
}

/// The decompression-bomb rule, for every codec: 8 MiB of zeros, a few KiB
/// compressed, refused at a 1 MiB limit without growing the heap past the
/// harness's bound (about twice the limit), i.e. without inflating it all.
#[test]
fn bombs_are_refused_without_inflating_them() {
    use rivulet_protocol::{compression, Compression, RecordError};
    const LIMIT: usize = 1 << 20;
    let _turn = serial();
    let zeros = vec![0u8; 8 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bomb = compression::compress(codec, &zeros).unwrap();
        let (result, heap) =
            records::meter::measure(|| compression::decompress(codec, &bomb, LIMIT));
        assert!(
            matches!(result, Err(RecordError::TooLarge { limit: LIMIT })),
            "{codec:?}: {result:?}"
        );
        assert!(
            heap <= records::max_decompress_heap(LIMIT, bomb.len()),
            "{codec:?}: a {} byte bomb grew the heap by {heap} bytes",
            bomb.len()
        );
    }
}

/// The produce path's record scan reads a compressed batch as it
/// inflates: a batch whose records inflate to 64 MiB (the broker's limit)
/// is walked holding the decoder's state and a 16 KiB buffer, not the
/// plaintext (snappy, which cannot be read in parts, excepted: it holds
/// the plaintext, bounded by the limit as in `decompress`).
#[test]
fn record_scans_of_compressed_batches_hold_no_plaintext() {
    use rivulet_protocol::records::{scan_batch, RecordBatchBuilder};
    use rivulet_protocol::Compression;
    const LIMIT: usize = 64 << 20;
    let _turn = serial();
    let value = vec![0u8; 1 << 20];
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let mut b = RecordBatchBuilder::new(codec);
        for i in 0..40 {
            b.push(i, Some(b"k"), Some(&value), &[]);
        }
        let batch = b.build().unwrap();
        let (result, heap) = records::meter::measure(|| scan_batch(&batch, LIMIT, |_| {}));
        assert_eq!(result.unwrap().keyless, 0, "{codec:?}");
        assert!(
            heap < 16 << 20,
            "{codec:?}: scanning {} bytes that inflate to 40 MiB grew the heap by {heap} bytes",
            batch.len()
        );
    }
}

#[test]
#[ignore = "rewrites fuzz/corpus/records (scripts/fuzz.sh seeds)"]
fn write_records_seeds() {
    rivulet_testkit::fuzz::write_seeds("records", &records::seeds());
}
