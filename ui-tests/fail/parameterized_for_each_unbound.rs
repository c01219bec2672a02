// `ParameterizedForEach(values)` names a flow value that nothing provides (a typo of `sizes`).
use taskflow::prelude::*;

#[task(provides = formatted)]
fn format_disk(size: u32) -> u32 {
    size
}

flow! {
    flow Format(sizes: Vec<u32>) -> (formatted) {
        retry(ParameterizedForEach(sizs) -> size) linear [ format_disk ]
    }
}

fn main() {}
