// A value read by value by two steps must be `Clone` (the first gets a copy): a value that is
// not is one error naming the value and the steps that read it.
use taskflow::prelude::*;

pub struct Ticket {
    pub id: u32,
}

#[task(provides = ticket)]
fn issue(n: u32) -> Ticket {
    Ticket { id: n }
}

#[task(provides = first)]
fn redeem(ticket: Ticket) -> u32 {
    ticket.id
}

#[task(provides = second)]
fn archive(ticket: Ticket) -> u32 {
    ticket.id + 1
}

flow! {
    flow Tickets(n: u32) -> (first, second) {
        linear [ issue, redeem, archive ]
    }
}

fn main() {
    let _ = Engine::serial().run(Tickets, TicketsInputs { n: 1 }).blocking();
}
