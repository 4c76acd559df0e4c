//! Harnesses of Rivulet's fuzz targets, one module per target. The fuzz
//! targets (fuzz_targets/) call them under libFuzzer; the corpus smoke tests
//! of the default test run include the same files by `#[path]`
//! (broker/tests/fuzz_corpus.rs, protocol/tests/fuzz_corpus.rs).

pub mod records;
pub mod request;
pub mod sasl;
pub mod sasl_session;
