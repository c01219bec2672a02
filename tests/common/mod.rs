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

/// A scratch directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "taskflow-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            taskflow::store::new_flow_id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// At most `.0` attempts in all, like `Times`; provides each attempt's number (1-based) to its
/// sub-flow, so steps can behave by attempt.
pub struct Attempts(pub u32);

impl taskflow::Retry for Attempts {
    type Item = u32;
    fn item(&self, attempt: u32) -> Option<u32> {
        Some(attempt)
    }
    fn on_failure(&self, history: &taskflow::History) -> taskflow::Decision {
        if history.attempts() < self.0 {
            taskflow::Decision::Retry
        } else {
            taskflow::Decision::Revert
        }
    }
}
