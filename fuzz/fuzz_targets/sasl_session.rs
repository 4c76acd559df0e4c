//! Arbitrary frames through a SASL listener's connection state machine
//! against an in-process broker; see `rivulet_fuzz::sasl_session`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rivulet_fuzz::sasl_session::run(data);
});
