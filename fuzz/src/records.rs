//! The `records` fuzz target: arbitrary bytes through the record-batch view
//! (`rivulet_protocol::record_batch`), the record codec (`records`) and
//! every compression codec (`compression`).
//!
//! Input: byte 0 picks what to exercise ([`Mode`]), byte 1 the
//! decompression limit (one of [`LIMITS`], the last being the default
//! `message.max.bytes`), the rest is the payload. A panic, or a broken
//! invariant asserted here, is a finding:
//!
//! - the view never accepts a batch whose declared size is not the bytes it
//!   covers, and iterating a record set stays inside it;
//! - a decoded batch has exactly `record_count` records with offset deltas
//!   in range, and re-encoding it decodes to the same records;
//! - decompression never returns more than the limit, and a stream that
//!   would expand past it (a decompression bomb) is refused having grown the
//!   heap by at most about twice the limit ([`max_decompress_heap`]), i.e.
//!   without inflating it all. The heap is measured by [`meter::Meter`]
//!   when the binary installs it as its global allocator (the fuzz target
//!   and the smoke test do).
//!
//! This file is shared by `#[path]` with `protocol/tests/fuzz_corpus.rs`,
//! which replays the corpus and the regressions in `cargo test`; it only
//! uses crates that `rivulet-protocol` depends on.

use rivulet_protocol::compression;
use rivulet_protocol::record_batch::{
    self, validate_batch, validate_produced_batch, BatchHeader, BatchIter, Compression,
    HEADER_SIZE, LOG_OVERHEAD,
};
use rivulet_protocol::records::{self, build_batch, RecordBatchBuilder};
use rivulet_protocol::RecordError;

/// The decompression limits byte 1 chooses from.
pub const LIMITS: [usize; 3] = [4 * 1024, 64 * 1024, 1_048_588];

/// Heap growth allowed while decompressing, beyond the limit itself: the
/// output grows by doubling (clamped to the limit), so a reallocation can
/// briefly hold one and a half times it; decoders keep windows and buffers
/// of a few tens of KiB.
pub fn max_decompress_heap(limit: usize, input: usize) -> usize {
    2 * limit + input + 512 * 1024
}

/// Round trips through the compressors only below this size, to keep an
/// execution cheap (gzip compresses a MiB in tens of milliseconds).
const ROUND_TRIP_MAX: usize = 64 * 1024;

/// What one input exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The payload as a record set: header parse, validation, iteration, and
    /// the record decoder on every batch that validates.
    View,
    /// The payload as one batch whose length and CRC are made right first, so
    /// that the fuzzer reaches the records and the codecs behind them.
    Batch,
    /// The payload as the records payload of a batch in this codec.
    Codec(Compression),
}

impl Mode {
    const ALL: [Mode; 7] = [
        Mode::View,
        Mode::Batch,
        Mode::Codec(Compression::None),
        Mode::Codec(Compression::Gzip),
        Mode::Codec(Compression::Snappy),
        Mode::Codec(Compression::Lz4),
        Mode::Codec(Compression::Zstd),
    ];

    fn from_byte(b: u8) -> Mode {
        Mode::ALL[usize::from(b) % Mode::ALL.len()]
    }

    fn to_byte(self) -> u8 {
        Mode::ALL.iter().position(|m| *m == self).unwrap_or(0) as u8
    }
}

/// An input for `mode` with limit `LIMITS[limit]` and `payload`.
pub fn input(mode: Mode, limit: usize, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![mode.to_byte(), limit as u8];
    out.extend_from_slice(payload);
    out
}

/// Run one input.
pub fn run(data: &[u8]) {
    let [mode, limit, payload @ ..] = data else {
        return;
    };
    let limit = LIMITS[usize::from(*limit) % LIMITS.len()];
    match Mode::from_byte(*mode) {
        Mode::View => view(payload, limit),
        Mode::Batch => batch(payload, limit),
        Mode::Codec(codec) => codec_round(codec, payload, limit),
    }
}

fn view(set: &[u8], limit: usize) {
    let _ = BatchHeader::parse(set);
    let _ = record_batch::peek_batch_size(set);
    if let Ok(h) = validate_batch(set) {
        assert_eq!(h.size_in_bytes(), set.len(), "validated size");
    }
    let mut end = 0;
    for item in BatchIter::new(set) {
        let Ok((range, header)) = item else { break };
        assert_eq!(range.start, end, "batches are contiguous");
        assert!(range.end <= set.len(), "batch inside the set");
        assert_eq!(header.size_in_bytes(), range.len(), "batch size");
        end = range.end;
        let bytes = &set[range];
        if validate_produced_batch(bytes).is_ok() {
            assert!(header.record_count >= 1);
        }
        decode_checked(bytes, limit);
    }
}

fn batch(payload: &[u8], limit: usize) {
    if payload.len() < HEADER_SIZE {
        return view(payload, limit);
    }
    let mut bytes = payload.to_vec();
    // The fuzzer cannot guess a CRC-32C: make length, magic and CRC right so
    // that it explores what lies behind them.
    let Ok(length) = i32::try_from(bytes.len() - LOG_OVERHEAD) else {
        return;
    };
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    bytes[16] = record_batch::MAGIC_V2 as u8;
    record_batch::update_crc(&mut bytes);
    decode_checked(&bytes, limit);
}

/// Decode a batch and check what came out; re-encode a good one and check
/// it decodes to the same.
fn decode_checked(bytes: &[u8], limit: usize) {
    let Ok(header) = validate_batch(bytes) else {
        return;
    };
    // The produce path's in-place scan accepts exactly what decodes, and
    // sees the same keys and timestamps.
    let mut sketches = Vec::new();
    let scanned = records::scan_batch(bytes, limit, |r| sketches.push(r));
    let decoded = match records::decode_batch(bytes, limit) {
        Ok(d) => d,
        Err(RecordError::TooLarge { limit: l }) => {
            assert_eq!(l, limit, "TooLarge names the limit");
            assert!(
                scanned.is_err(),
                "scan_batch accepted what exceeds the limit"
            );
            return;
        }
        Err(e) => {
            assert!(
                scanned.is_err(),
                "scan_batch accepted what decode_batch refused: {e}"
            );
            return;
        }
    };
    let summary = scanned.expect("scan_batch accepts what decode_batch decodes");
    assert_eq!(sketches.len(), decoded.records.len());
    for (i, (s, r)) in sketches.iter().zip(&decoded.records).enumerate() {
        assert_eq!((s.index, s.has_key), (i, r.key.is_some()));
        assert_eq!(s.timestamp_delta, r.timestamp_delta);
    }
    let max = decoded.records.iter().map(|r| r.timestamp_delta).max();
    assert_eq!(summary.timestamp_deltas.map(|(_, hi)| hi), max);
    assert_eq!(decoded.header, header);
    assert_eq!(decoded.records.len(), header.record_count as usize);
    for r in &decoded.records {
        assert!((0..=header.last_offset_delta).contains(&r.offset_delta));
    }
    // Re-encoding writes canonical varints, never longer than the input's,
    // so it fits the same limit.
    let again = build_batch(&header, &decoded.records).expect("a decoded batch re-encodes");
    let back = records::decode_batch(&again, limit).expect("a re-encoded batch decodes");
    assert_eq!(back.records, decoded.records, "records round trip");
    assert_eq!(back.header.attributes, header.attributes);
}

fn codec_round(codec: Compression, input: &[u8], limit: usize) {
    let (result, heap) = meter::measure(|| compression::decompress(codec, input, limit));
    if meter::installed() {
        assert!(
            heap <= max_decompress_heap(limit, input.len()),
            "{codec:?}: decompressing {} bytes with limit {limit} grew the heap by {heap} bytes ({result:?})",
            input.len(),
        );
    }
    match result {
        Ok(out) => {
            assert!(out.len() <= limit, "{codec:?} returned more than the limit");
            if out.len() <= ROUND_TRIP_MAX {
                let again = compression::compress(codec, &out).expect("compress");
                let back = compression::decompress(codec, &again, out.len()).expect("round trip");
                assert!(back == out, "{codec:?} round trip");
            }
        }
        Err(RecordError::TooLarge { limit: l }) => assert_eq!(l, limit),
        Err(_) => {}
    }
}

/// Seed inputs: real batches in every codec (with keys, null values and
/// headers), bare codec payloads, and decompression bombs for each codec.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let default_limit = LIMITS.len() - 1;
    let mut out = Vec::new();
    for codec in codecs {
        let mut b = RecordBatchBuilder::new(codec).producer(7, 0, 0);
        b.push(1_000, Some(b"key"), Some(b"value"), &[("h", Some(b"v"))]);
        b.push(1_001, None, Some(b"second"), &[]);
        b.push(
            1_002,
            Some(b"tombstone"),
            None,
            &[("a", None), ("b", Some(b""))],
        );
        let Ok(one) = b.build() else { continue };
        let name = format!("{codec:?}").to_lowercase();
        out.push((
            format!("view-{name}"),
            input(Mode::View, default_limit, &one),
        ));
        let mut two = one.clone();
        two.extend_from_slice(&one);
        out.push((
            format!("view-two-{name}"),
            input(Mode::View, default_limit, &two),
        ));
        out.push((format!("batch-{name}"), input(Mode::Batch, 0, &one)));
        let mut encoded = Vec::new();
        for i in 0..3 {
            let r = records::Record {
                offset_delta: i,
                timestamp_delta: i64::from(i),
                key: Some(bytes::Bytes::from_static(b"k")),
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Vec::new(),
            };
            records::encode_record(&r, &mut encoded);
        }
        if let Ok(payload) = compression::compress(codec, &encoded) {
            out.push((
                format!("codec-{name}"),
                input(Mode::Codec(codec), 1, &payload),
            ));
        }
        // Bombs: zeros that expand past the 64 KiB limit (small inputs for
        // every codec), and for the codecs with the highest ratios past the
        // default `message.max.bytes` too.
        let bombs: &[(usize, usize)] = match codec {
            Compression::None => &[],
            Compression::Gzip | Compression::Zstd => &[(1, 256 << 10), (default_limit, 2 << 20)],
            Compression::Snappy | Compression::Lz4 => &[(1, 256 << 10)],
        };
        for &(limit, size) in bombs {
            let zeros = vec![0u8; size];
            let kib = size >> 10;
            if let Ok(bomb) = compression::compress(codec, &zeros) {
                out.push((
                    format!("bomb-{name}-{kib}k"),
                    input(Mode::Codec(codec), limit, &bomb),
                ));
            }
            let mut b = RecordBatchBuilder::new(codec);
            b.push(0, None, Some(&zeros), &[]);
            if let Ok(batch) = b.build() {
                out.push((
                    format!("batch-bomb-{name}-{kib}k"),
                    input(Mode::Batch, limit, &batch),
                ));
            }
        }
    }
    out
}

/// A counting global allocator: the heap bytes in use and the peak since
/// the last [`measure`]. A binary opts in with
/// `#[global_allocator] static A: meter::Meter = meter::Meter;`.
pub mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    static INSTALLED: AtomicBool = AtomicBool::new(false);

    // Per thread, so that a measurement sees only what its own thread
    // allocates: another thread freeing memory meanwhile (the test
    // harness dropping a finished test's output) cannot hide a growth.
    // Const-initialised `Cell`s of plain integers: no lazy init and no
    // destructor, so the allocator can touch them at any time.
    thread_local! {
        static IN_USE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    pub struct Meter;

    fn grew(by: usize) {
        let by = isize::try_from(by).unwrap_or(isize::MAX);
        let _ = IN_USE.try_with(|u| {
            let now = u.get().saturating_add(by);
            u.set(now);
            let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        });
        INSTALLED.store(true, Relaxed);
    }

    fn shrank(by: usize) {
        let by = isize::try_from(by).unwrap_or(isize::MAX);
        let _ = IN_USE.try_with(|u| u.set(u.get().saturating_sub(by)));
    }

    // SAFETY: every call is forwarded to `System` unchanged; the counters
    // are only arithmetic on the sizes.
    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                // Count the new block before the old one goes, as a
                // moving reallocation holds both for a moment.
                grew(new_size);
                shrank(layout.size());
            }
            p
        }
    }

    /// Whether a [`Meter`] is the global allocator (it has counted something).
    pub fn installed() -> bool {
        INSTALLED.load(Relaxed)
    }

    /// Run `f`; also return by how much this thread's heap grew at its
    /// peak during the call (0 without a [`Meter`]). Other threads'
    /// allocations and frees do not count (the codecs run on the caller's
    /// thread).
    pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
        let base = IN_USE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        let out = f();
        let peak = PEAK.with(Cell::get);
        (out, usize::try_from(peak.saturating_sub(base)).unwrap_or(0))
    }
}
