//! Arbitrary bytes through the record-batch view, the record codec and the
//! compression codecs; see `rivulet_fuzz::records`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_fuzz::records::{self, meter::Meter};

// Measures the heap while decompressing: a bomb must be refused without
// inflating it all.
#[global_allocator]
static ALLOC: Meter = Meter;

fuzz_target!(|data: &[u8]| {
    records::run(data);
});
