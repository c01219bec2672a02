// `Times(n)` takes a number of attempts: a string is one error on it.
use taskflow::prelude::*;

#[task(provides = done)]
fn flaky(n: u32) -> u32 {
    n
}

flow! {
    flow Flaky(n: u32) -> (done) {
        retry(Times("3")) linear [ flaky ]
    }
}

fn main() {}
