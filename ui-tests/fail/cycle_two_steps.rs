// Two explicit links in a `graph` order `fetch` before `build` and `build` before `fetch`.
use taskflow::prelude::*;

#[task]
fn fetch() {}

#[task]
fn build() {}

flow! {
    flow Ci() {
        graph [ fetch, build, fetch -> build, build -> fetch ]
    }
}

fn main() {}
