// A fallible task's error type (`Refused`) does not implement `std::error::Error`.
use taskflow::prelude::*;

#[derive(Debug)]
struct Refused;

#[task(provides = server_id)]
fn launch_server(image: String) -> Result<u64, Refused> {
    let _ = image;
    Err(Refused)
}

fn main() {}
