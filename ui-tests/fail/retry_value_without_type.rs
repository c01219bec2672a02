// A retry controller's value needs its type written (except with ParameterizedForEach).
use taskflow::prelude::*;

#[task(provides = placed)]
fn place(zone: String) -> String {
    zone
}

flow! {
    flow Place() -> (placed) {
        retry(ForEach(vec!["a".to_owned(), "b".to_owned()]) -> zone) linear [ place ]
    }
}

fn main() {}
