//! Writes the long generated flows of the tests and benchmarks into `OUT_DIR`, one `flow!` call
//! per file, for them to `include!`:
//!
//! ```ignore
//! include!(concat!(env!("OUT_DIR"), "/chain500.rs"));
//! ```
//!
//! `flow!` wants a distinct value name per step (two steps may not provide the same name) and
//! `macro_rules!` cannot make names up, so these flows were once pasted text; writing them here
//! keeps one definition of each shape. The tasks stay in the files that use the flows, next to
//! the code that measures or asserts on them.
//!
//! benches/compile_time.sh compiles and runs this file on its own (it needs only std and
//! `OUT_DIR`) for the chains it compiles: with `TASKFLOW_CHAINS` set to step counts
//! (`"100 1000 5000"`), it writes `chain{N}.rs` (flow `Chain{N}`) for each of them too. Cargo
//! never sets that variable, so builds of the package write only what its tests and benchmarks
//! include.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TASKFLOW_CHAINS");
    let out = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let out = Path::new(&out);

    // benches/serial.rs: the engine's chain and the same calls written out, its baseline.
    write(out, "chain100.rs", &chain("Chain100", "add_one", 100));
    write(out, "direct_chain100.rs", &direct_chain("add_one", 100));
    // tests/large_flow.rs, and benches/compile_time.sh with chain100.rs.
    write(out, "chain500.rs", &chain("Chain500", "add_one", 500));
    // benches/durable.rs.
    write(out, "chain1000.rs", &chain("Chain1000", "add_one", 1000));
    // benches/parallel.rs.
    write(
        out,
        "fan_out_sync.rs",
        &fan_out("FanOutSync", "noop", "y", "s", 1024),
    );
    write(
        out,
        "fan_out_async.rs",
        &fan_out("FanOutAsync", "noop_async", "y", "s", 1024),
    );
    write(out, "sleep64.rs", &fan_out("Sleep64", "nap", "z", "n", 64));
    // benches/compile_time.sh.
    if let Some(counts) = env::var_os("TASKFLOW_CHAINS") {
        for count in counts.to_string_lossy().split_whitespace() {
            let steps: usize = count
                .parse()
                .unwrap_or_else(|_| panic!("TASKFLOW_CHAINS: `{count}` is not a step count"));
            let name = format!("Chain{steps}");
            write(
                out,
                &format!("chain{steps}.rs"),
                &chain(&name, "add_one", steps),
            );
        }
    }
}

/// A `linear` chain of `steps` calls of `task`, step `s{i}` binding its `x` to `v{i}` and
/// providing `v{i+1}`: input `v0`, output `v{steps}`.
fn chain(name: &str, task: &str, steps: usize) -> String {
    flow(
        name,
        "v0: u64",
        &format!("v{steps}"),
        "linear",
        (0..steps).map(|i| format!("{task}(x = v{i}) -> v{} as s{i}", i + 1)),
    )
}

/// An `unordered` fan-out of `steps` calls of `task`, every step binding its `x` to the input
/// `x`; step `{label}{i}` provides `{out}{i}`; the outputs are the first and the last step's.
fn fan_out(name: &str, task: &str, out: &str, label: &str, steps: usize) -> String {
    flow(
        name,
        "x: u64",
        &format!("{out}0, {out}{}", steps - 1),
        "unordered",
        (0..steps).map(|i| format!("{task}(x = x) -> {out}{i} as {label}{i}")),
    )
}

/// The `flow!` call of one flow whose body is a single pattern of `steps`.
fn flow(
    name: &str,
    inputs: &str,
    outputs: &str,
    pattern: &str,
    steps: impl Iterator<Item = String>,
) -> String {
    let mut text =
        format!("flow! {{\n    flow {name}({inputs}) -> ({outputs}) {{\n        {pattern} [\n");
    for step in steps {
        writeln!(text, "            {step},").unwrap();
    }
    text + "        ]\n    }\n}\n"
}

/// What `chain` computes, as plain calls: a block expression that threads the variable `v`
/// (which the including function declares) through `steps` calls of `task`, with `black_box`
/// between the calls so the compiler cannot fold them.
fn direct_chain(task: &str, steps: usize) -> String {
    let mut text = String::from("{\n");
    for _ in 0..steps {
        writeln!(text, "    v = {task}(black_box(v));").unwrap();
    }
    text + "    v\n}\n"
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    fs::write(&path, text).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}
