// A task whose `provides` does not fit its return is its own error, once; the flow that uses it
// (and reads what it says it provides) adds none.
use taskflow::prelude::*;

#[task(provides = (width, height))]
fn measure(side: u32) -> u32 {
    side
}

#[task(provides = area)]
fn area(width: u32, height: u32) -> u32 {
    width * height
}

flow! {
    flow Area(side: u32) -> (area) {
        linear [ measure, area ]
    }
}

fn main() {
    let _ = Engine::serial().run(Area, AreaInputs { side: 2 }).blocking();
}
