// `ForEach(values) -> name: T` tries each of `values` as `name`: values of another type are one
// error on them.
use taskflow::prelude::*;

#[task(provides = placed)]
fn place(zone: &str, n: u32) -> String {
    format!("{zone}{n}")
}

flow! {
    flow Place(n: u32) -> (placed) {
        retry(ForEach(vec![1u32, 2, 3]) -> zone: String) linear [ place ]
    }
}

fn main() {}
