//! Arbitrary bytes through the SASL parsers and SCRAM exchanges, server and
//! client side; see `rivulet_fuzz::sasl`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::sasl::run(data);
});
