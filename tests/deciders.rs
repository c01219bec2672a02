//! Deciders: `a -> b if decide` in a graph. When the decider says no, `b` and every step that
//! depends only on skipped steps end IGNORE, and the flow can still succeed.
mod common;

use std::sync::{Arc, Mutex};

use common::Trace;
use taskflow::prelude::*;
use taskflow::{Listener, StepEvent, StepState};

#[task(provides = size_gb)]
fn measure(trace: &Trace, requested: u32) -> u32 {
    trace.push("measure");
    requested
}

/// Only volumes of at least 10 GB get a backup.
#[task]
fn big_enough(size_gb: &u32) -> bool {
    *size_gb >= 10
}

#[task(provides = backup_id, revert = drop_backup)]
fn backup(trace: &Trace, size_gb: u32) -> String {
    trace.push("backup");
    format!("bk-{size_gb}")
}

#[revert]
fn drop_backup(trace: &Trace) {
    trace.push("drop backup");
}

#[task(provides = verified)]
fn verify(trace: &Trace, backup_id: &str) -> String {
    trace.push("verify");
    format!("{backup_id} ok")
}

#[task(provides = report)]
fn summarize(trace: &Trace, size_gb: u32, verified: Option<String>) -> String {
    trace.push("summarize");
    format!(
        "{size_gb} GB, backup: {}",
        verified.as_deref().unwrap_or("none")
    )
}

flow! {
    flow Backup(trace: Trace, requested: u32) -> (report, verified) {
        graph [
            measure,
            backup,
            verify,
            summarize,
            measure -> backup if big_enough,
        ]
    }
}

#[derive(Default)]
struct States(Mutex<Vec<String>>);

impl Listener for States {
    fn on_step(&self, e: &StepEvent<'_>) {
        if matches!(e.state, StepState::Ignore | StepState::Success) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", e.step, e.state));
        }
    }
}

#[test]
fn a_decider_that_says_yes_lets_the_branch_run() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let out = engine
            .run_blocking(
                Backup,
                BackupInputs {
                    trace: trace.clone(),
                    requested: 20,
                },
            )
            .unwrap();
        assert_eq!(out.report, "20 GB, backup: bk-20 ok");
        assert_eq!(out.verified.as_deref(), Some("bk-20 ok"));
        assert_eq!(trace.events(), ["measure", "backup", "verify", "summarize"]);
    }
}

#[test]
fn a_decider_that_says_no_ignores_the_branch_and_the_flow_succeeds() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let states = Arc::new(States::default());
        let out = engine
            .listener(states.clone())
            .run_blocking(
                Backup,
                BackupInputs {
                    trace: trace.clone(),
                    requested: 5,
                },
            )
            .unwrap();
        assert_eq!(out.report, "5 GB, backup: none");
        assert_eq!(out.verified, None);
        assert_eq!(trace.events(), ["measure", "summarize"]);
        let states = states.0.lock().unwrap().clone();
        assert!(states.contains(&"backup IGNORE".to_owned()), "{states:?}");
        // `verify` depends only on the skipped `backup`: IGNORE too.
        assert!(states.contains(&"verify IGNORE".to_owned()), "{states:?}");
        assert!(
            states.contains(&"summarize SUCCESS".to_owned()),
            "{states:?}"
        );
    }
}

#[task]
fn fail_late(report: &str) -> Result<(), std::io::Error> {
    Err(std::io::Error::other(format!(
        "late failure after {report}"
    )))
}

flow! {
    flow BackupThenFail(trace: Trace, requested: u32) {
        linear [ Backup, fail_late ]
    }
}

#[test]
fn ignored_steps_are_not_reverted() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let err = engine
            .run_blocking(
                BackupThenFail,
                BackupThenFailInputs {
                    trace: trace.clone(),
                    requested: 5,
                },
            )
            .unwrap_err();
        assert_eq!(err.failed_step(), "fail_late");
        assert_eq!(trace.events(), ["measure", "summarize"]);

        let trace = Trace::default();
        engine
            .run_blocking(
                BackupThenFail,
                BackupThenFailInputs {
                    trace: trace.clone(),
                    requested: 50,
                },
            )
            .unwrap_err();
        assert_eq!(
            trace.events(),
            ["measure", "backup", "verify", "summarize", "drop backup"]
        );
    }
}
