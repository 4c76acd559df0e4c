//! Sanity check that the workspace crates link together.
#[test]
fn crates_link() {
    assert_eq!(rivulet_protocol::record_batch::HEADER_SIZE, 61);
}
