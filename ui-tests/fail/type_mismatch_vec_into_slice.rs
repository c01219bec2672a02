// `&[T]` reads a `Vec<T>` of that `T` only: a `Vec<u32>` into `&[u64]` is one error.
use taskflow::prelude::*;

#[task(provides = sizes)]
fn list_sizes(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[task(provides = total)]
fn sum_sizes(sizes: &[u64]) -> u64 {
    sizes.iter().sum()
}

flow! {
    flow Total(n: u32) -> (total) {
        linear [ list_sizes, sum_sizes ]
    }
}

fn main() {}
