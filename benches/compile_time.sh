#!/usr/bin/env bash
# How long `cargo check` takes on a crate with one N-step linear flow (N = 100, and 500: the flow of
# tests/large_flow.rs), against an empty crate that depends on taskflow too. Dependencies are built
# once first; each sample re-checks only the crate itself (its src/lib.rs touched). Prints the
# median of RUNS samples per crate.
#
#   benches/compile_time.sh [RUNS]      (default 7)
set -euo pipefail
runs="${1:-7}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The flows are those of the tests and benchmarks: the root package's build script (std only) is
# compiled and run on its own to write them, as cargo would into OUT_DIR.
flows="$work/flows"
mkdir -p "$flows"
rustc --edition 2021 --crate-name write_flows "$root/build.rs" -o "$work/write_flows"
OUT_DIR="$flows" "$work/write_flows" > /dev/null

make_crate() { # name flow-file (none: the empty crate)
    local dir="$work/$1"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2021"
[dependencies]
taskflow = { path = "$root/taskflow" }
[workspace]
TOML
    {
        echo "#![allow(dead_code, unused_imports)]"
        echo "use taskflow::prelude::*;"
        if [ "$2" != none ]; then
            printf '#[task(provides = y)]\nfn add_one(x: u64) -> u64 { x + 1 }\n'
            cat "$flows/$2"
        fi
    } > "$dir/src/lib.rs"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

export CARGO_TARGET_DIR="$work/target"
for spec in empty:none steps100:chain100.rs steps500:chain500.rs; do
    name="${spec%%:*}"; flow="${spec##*:}"
    make_crate "$name" "$flow"
    (cd "$work/$name" && cargo check -q 2>/dev/null)   # build dependencies once
    samples=()
    for _ in $(seq "$runs"); do
        touch "$work/$name/src/lib.rs"
        start=$(date +%s%N)
        (cd "$work/$name" && cargo check -q)
        end=$(date +%s%N)
        samples+=($(( (end - start) / 1000000 )))
    done
    printf '%-9s median %5d ms  (samples: %s)\n' "$name" "$(printf '%s\n' "${samples[@]}" | median)" "${samples[*]}"
done
