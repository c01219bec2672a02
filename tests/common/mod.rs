//! Shared test helpers: a trace that steps and revert hooks append to.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

/// A cloneable handle to an ordered list of events; flows take it as an input.
#[derive(Clone, Default, Debug)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A typed error for steps to fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {0} refused")]
pub struct Refused(pub u32);
