//! The macros' compile errors and accepted forms, with trybuild: `ui/*.rs` must fail to compile
//! with the `.stderr` beside them; `ui/pass/*.rs` must compile and run.
//!
//! Regenerate after a deliberate change with `TRYBUILD=overwrite cargo test -p dj-tests --test
//! ui`, then review every changed `.stderr`: the span must sit on the offending token and the
//! message must say what to write.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
    t.pass("ui/pass/*.rs");
}
