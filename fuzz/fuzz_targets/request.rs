//! Arbitrary bytes as a request frame through the connection's path
//! (`handle_frame`) against an in-process broker; see `rivulet_fuzz::request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rivulet_fuzz::request::Harness;

fuzz_target!(|data: &[u8]| {
    let _ = Harness::get().run(data);
});
