//! The 100,000-directory version of tests/it/descriptors.rs: minutes of
//! directory creation and copying on a busy disk, so in `slow::`.

#[test]
fn every_command_keeps_descriptors_bounded_with_100000_directories() {
    crate::descriptors::commands_within_the_descriptor_limit(100_000);
}
