#!/usr/bin/env bash
# What a large flow costs to compile: `cargo check`, and `cargo build` in the dev profile and in the
# release profile with debuginfo, each timed with the compiler's peak memory, for a crate whose
# binary runs one N-step linear flow on both engines (N = 100, 1000 and 5000 by default), against
# an empty crate with the same dependency. Dependencies are built once per profile first; each
# sample rebuilds only the crate itself (its src/main.rs touched, incremental compilation off, so a
# sample is the whole crate compiled, not a cache hit). Prints the median of RUNS samples.
#
#   benches/compile_time.sh [RUNS] [STEPS...]     (defaults: 3, and 100 1000 5000)
#
# COMMANDS=check (or "check build") measures only those of: check, build, release.
# Peak memory is the largest resident set of any process cargo waited for (GNU time's %M, which
# is rustc here). Takes about 15 minutes with the defaults on a 2-core machine.
set -euo pipefail
runs="${1:-3}"
shift || true
sizes=("${@:-100 1000 5000}")
read -r -a sizes <<< "${sizes[*]}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v /usr/bin/time > /dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }

# The flows are written by the root package's build script (std only), compiled and run on its own
# as cargo would into OUT_DIR, asked for the chains measured here.
flows="$work/flows"
mkdir -p "$flows"
rustc --edition 2021 --crate-name write_flows "$root/build.rs" -o "$work/write_flows"
OUT_DIR="$flows" TASKFLOW_CHAINS="${sizes[*]}" "$work/write_flows" > /dev/null

make_crate() { # name steps (0: the empty crate)
    local dir="$work/$1" steps="$2"
    mkdir -p "$dir/src"
    cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2021"
[dependencies]
taskflow = { path = "$root/taskflow" }
[profile.release]
debug = true
[workspace]
TOML
    {
        echo "#![allow(dead_code, unused_imports)]"
        echo "use taskflow::prelude::*;"
        if [ "$steps" = 0 ]; then
            echo "fn main() {}"
        else
            printf '#[task(provides = y)]\nfn add_one(x: u64) -> u64 { x + 1 }\n'
            cat "$flows/chain$steps.rs"
            cat <<RS
fn main() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let out = engine.run(Chain$steps, Chain${steps}Inputs { v0: 0 }).blocking().unwrap();
        assert_eq!(out.v$steps, $steps);
    }
}
RS
        fi
    } > "$dir/src/main.rs"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# sample <crate> <cargo args...>: prints "<ms> <peak KiB>" for one rebuild of the crate.
sample() {
    local dir="$work/$1"; shift
    touch "$dir/src/main.rs"
    local start end
    start=$(date +%s%N)
    (cd "$dir" && /usr/bin/time -f %M -o "$work/peak" cargo "$@" -q)
    end=$(date +%s%N)
    echo "$(( (end - start) / 1000000 )) $(cat "$work/peak")"
}

export CARGO_TARGET_DIR="$work/target" CARGO_INCREMENTAL=0
crates=("empty:0")
for n in "${sizes[@]}"; do crates+=("steps$n:$n"); done
for spec in "${crates[@]}"; do make_crate "${spec%%:*}" "${spec##*:}"; done

printf '%-10s %-16s %10s %12s   %s\n' crate command "median ms" "peak MiB" "samples (ms)"
for which in ${COMMANDS:-check build release}; do
    case "$which" in
        check) cmd=check ;; build) cmd=build ;; release) cmd="build --release" ;;
        *) echo "COMMANDS: unknown command $which" >&2; exit 1 ;;
    esac
    (cd "$work/empty" && cargo $cmd -q 2> /dev/null)   # dependencies once per profile
    empty_ms=""
    for spec in "${crates[@]}"; do
        name="${spec%%:*}"; steps="${spec##*:}"
        times=(); peaks=()
        for _ in $(seq "$runs"); do
            read -r ms kib <<< "$(sample "$name" $cmd)"
            times+=("$ms"); peaks+=("$kib")
        done
        ms=$(printf '%s\n' "${times[@]}" | median)
        mib=$(( $(printf '%s\n' "${peaks[@]}" | sort -n | tail -1) / 1024 ))
        if [ "$steps" = 0 ]; then
            empty_ms=$ms; per=""
        else
            per=$(awk -v a="$ms" -v b="$empty_ms" -v n="$steps" \
                'BEGIN { printf "  %.2f ms per step over empty", (a - b) / n }')
        fi
        printf '%-10s %-16s %10d %12d   %s%s\n' "$name" "cargo $cmd" "$ms" "$mib" "${times[*]}" "$per"
    done
done
