// A `graph` with two separate cycles: `fetch` and `build` order each other, and so do `test`
// and `deploy`.
use taskflow::prelude::*;

#[task]
fn fetch() {}

#[task]
fn build() {}

#[task]
fn test() {}

#[task]
fn deploy() {}

flow! {
    flow Ci() {
        graph [
            fetch, build, test, deploy,
            fetch -> build, build -> fetch,
            test -> deploy, deploy -> test,
        ]
    }
}

fn main() {}
