//! The serial engine's per-step overhead: a 100-step linear chain of no-op steps (each adds 1 to
//! its input) on the engine, against the same chain as direct function calls and as a chain of
//! `&dyn Fn` calls, in the same run; and the engine with a listener attached against none. See
//! docs/BENCHMARKS.md for the numbers and how to read them.

use std::hint::black_box;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use taskflow::prelude::*;
use taskflow::{Listener, StepEvent};

#[task(provides = y)]
fn add_one(x: u64) -> u64 {
    black_box(x) + 1
}

flow! {
    flow Chain100(v0: u64) -> (v100) {
        linear [
            add_one(x = v0) -> v1 as s0,
            add_one(x = v1) -> v2 as s1,
            add_one(x = v2) -> v3 as s2,
            add_one(x = v3) -> v4 as s3,
            add_one(x = v4) -> v5 as s4,
            add_one(x = v5) -> v6 as s5,
            add_one(x = v6) -> v7 as s6,
            add_one(x = v7) -> v8 as s7,
            add_one(x = v8) -> v9 as s8,
            add_one(x = v9) -> v10 as s9,
            add_one(x = v10) -> v11 as s10,
            add_one(x = v11) -> v12 as s11,
            add_one(x = v12) -> v13 as s12,
            add_one(x = v13) -> v14 as s13,
            add_one(x = v14) -> v15 as s14,
            add_one(x = v15) -> v16 as s15,
            add_one(x = v16) -> v17 as s16,
            add_one(x = v17) -> v18 as s17,
            add_one(x = v18) -> v19 as s18,
            add_one(x = v19) -> v20 as s19,
            add_one(x = v20) -> v21 as s20,
            add_one(x = v21) -> v22 as s21,
            add_one(x = v22) -> v23 as s22,
            add_one(x = v23) -> v24 as s23,
            add_one(x = v24) -> v25 as s24,
            add_one(x = v25) -> v26 as s25,
            add_one(x = v26) -> v27 as s26,
            add_one(x = v27) -> v28 as s27,
            add_one(x = v28) -> v29 as s28,
            add_one(x = v29) -> v30 as s29,
            add_one(x = v30) -> v31 as s30,
            add_one(x = v31) -> v32 as s31,
            add_one(x = v32) -> v33 as s32,
            add_one(x = v33) -> v34 as s33,
            add_one(x = v34) -> v35 as s34,
            add_one(x = v35) -> v36 as s35,
            add_one(x = v36) -> v37 as s36,
            add_one(x = v37) -> v38 as s37,
            add_one(x = v38) -> v39 as s38,
            add_one(x = v39) -> v40 as s39,
            add_one(x = v40) -> v41 as s40,
            add_one(x = v41) -> v42 as s41,
            add_one(x = v42) -> v43 as s42,
            add_one(x = v43) -> v44 as s43,
            add_one(x = v44) -> v45 as s44,
            add_one(x = v45) -> v46 as s45,
            add_one(x = v46) -> v47 as s46,
            add_one(x = v47) -> v48 as s47,
            add_one(x = v48) -> v49 as s48,
            add_one(x = v49) -> v50 as s49,
            add_one(x = v50) -> v51 as s50,
            add_one(x = v51) -> v52 as s51,
            add_one(x = v52) -> v53 as s52,
            add_one(x = v53) -> v54 as s53,
            add_one(x = v54) -> v55 as s54,
            add_one(x = v55) -> v56 as s55,
            add_one(x = v56) -> v57 as s56,
            add_one(x = v57) -> v58 as s57,
            add_one(x = v58) -> v59 as s58,
            add_one(x = v59) -> v60 as s59,
            add_one(x = v60) -> v61 as s60,
            add_one(x = v61) -> v62 as s61,
            add_one(x = v62) -> v63 as s62,
            add_one(x = v63) -> v64 as s63,
            add_one(x = v64) -> v65 as s64,
            add_one(x = v65) -> v66 as s65,
            add_one(x = v66) -> v67 as s66,
            add_one(x = v67) -> v68 as s67,
            add_one(x = v68) -> v69 as s68,
            add_one(x = v69) -> v70 as s69,
            add_one(x = v70) -> v71 as s70,
            add_one(x = v71) -> v72 as s71,
            add_one(x = v72) -> v73 as s72,
            add_one(x = v73) -> v74 as s73,
            add_one(x = v74) -> v75 as s74,
            add_one(x = v75) -> v76 as s75,
            add_one(x = v76) -> v77 as s76,
            add_one(x = v77) -> v78 as s77,
            add_one(x = v78) -> v79 as s78,
            add_one(x = v79) -> v80 as s79,
            add_one(x = v80) -> v81 as s80,
            add_one(x = v81) -> v82 as s81,
            add_one(x = v82) -> v83 as s82,
            add_one(x = v83) -> v84 as s83,
            add_one(x = v84) -> v85 as s84,
            add_one(x = v85) -> v86 as s85,
            add_one(x = v86) -> v87 as s86,
            add_one(x = v87) -> v88 as s87,
            add_one(x = v88) -> v89 as s88,
            add_one(x = v89) -> v90 as s89,
            add_one(x = v90) -> v91 as s90,
            add_one(x = v91) -> v92 as s91,
            add_one(x = v92) -> v93 as s92,
            add_one(x = v93) -> v94 as s93,
            add_one(x = v94) -> v95 as s94,
            add_one(x = v95) -> v96 as s95,
            add_one(x = v96) -> v97 as s96,
            add_one(x = v97) -> v98 as s97,
            add_one(x = v98) -> v99 as s98,
            add_one(x = v99) -> v100 as s99,
        ]
    }
}

/// The baseline: the same 100 calls written out, with an optimisation barrier between steps so
/// the compiler cannot fold the chain into one addition.
#[inline(never)]
fn direct_chain(mut v: u64) -> u64 {
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v = add_one(black_box(v));
    v
}

#[inline(never)]
fn dyn_chain(steps: &[&dyn Fn(u64) -> u64], mut v: u64) -> u64 {
    for step in steps {
        v = step(black_box(v));
    }
    v
}

fn serial(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let engine = Engine::serial();
    let steps: Vec<&dyn Fn(u64) -> u64> = vec![&add_one; 100];
    assert_eq!(direct_chain(0), 100);
    assert_eq!(dyn_chain(&steps, 0), 100);
    assert_eq!(
        runtime
            .block_on(engine.run(Chain100, Chain100Inputs { v0: 0 }))
            .unwrap()
            .v100,
        100
    );

    let mut group = c.benchmark_group("chain100");
    group.bench_function("direct_calls", |b| b.iter(|| direct_chain(black_box(0))));
    group.bench_function("dyn_fn_calls", |b| {
        b.iter(|| dyn_chain(&steps, black_box(0)))
    });
    group.bench_function("serial_engine", |b| {
        b.iter(|| {
            runtime
                .block_on(engine.run(Chain100, Chain100Inputs { v0: black_box(0) }))
                .unwrap()
                .v100
        })
    });
    // The same chain with a listener attached: every step reports RUNNING and SUCCESS.
    let counted = Arc::new(Counting::default());
    let listened = Engine::serial().listener(counted.clone());
    group.bench_function("serial_engine_with_listener", |b| {
        b.iter(|| {
            runtime
                .block_on(listened.run(Chain100, Chain100Inputs { v0: black_box(0) }))
                .unwrap()
                .v100
        })
    });
    assert!(
        counted.0.load(Ordering::Relaxed) >= 200,
        "the listener saw the steps"
    );
    group.finish();
}

/// A listener that counts what it sees (the cheapest one that still does something).
#[derive(Default)]
struct Counting(AtomicU64);

impl Listener for Counting {
    fn on_step(&self, _: &StepEvent<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

criterion_group!(benches, serial);
criterion_main!(benches);
