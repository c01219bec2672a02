#!/usr/bin/env bash
# How long `cargo check` takes on a crate with one N-step linear flow, against an empty crate that
# depends on taskflow too. Dependencies are built once first; each sample re-checks only the crate
# itself (its src/lib.rs touched). Prints the median of RUNS samples per crate.
#
#   benches/compile_time.sh [RUNS]      (default 7)
set -euo pipefail
runs="${1:-7}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

make_crate() { # name steps
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
    python3 - "$2" > "$dir/src/lib.rs" <<'PY'
import sys
n = int(sys.argv[1])
print("#![allow(dead_code, unused_imports)]")
print("use taskflow::prelude::*;")
if n:
    print("#[task(provides = y)]\nfn add_one(x: u64) -> u64 { x + 1 }")
    steps = ",\n".join(f"        add_one(x = v{i}) -> v{i+1} as s{i}" for i in range(n))
    print(f"flow! {{ flow Chain(v0: u64) -> (v{n}) {{ linear [\n{steps}\n    ] }} }}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

export CARGO_TARGET_DIR="$work/target"
for spec in empty:0 steps100:100 steps500:500; do
    name="${spec%%:*}"; steps="${spec##*:}"
    make_crate "$name" "$steps"
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
