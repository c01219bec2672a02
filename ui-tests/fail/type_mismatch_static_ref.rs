// A `&'static str` parameter reads a value that is a `&'static str` itself (it cannot borrow from a
// flow value): a `String` is one error, with a note saying why deref does not serve.
use taskflow::prelude::*;

#[task(provides = name)]
fn choose(n: u32) -> String {
    n.to_string()
}

#[task(provides = greeting)]
fn greet(name: &'static str) -> String {
    format!("hello {name}")
}

flow! {
    flow Greet(n: u32) -> (greeting) {
        linear [ choose, greet ]
    }
}

fn main() {}
