//! The compile-time checks of `#[task]` and `flow!` (DESIGN §2): every case in `ui-tests/fail/`
//! must fail to build with exactly its committed `.stderr`, every case in `ui-tests/pass/` must
//! build and run. Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui`
//! and review them like code.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui-tests/pass/*.rs");
    t.compile_fail("ui-tests/fail/*.rs");
}
