// A sub-flow's output that a decider inside it may skip reaches the outer flow as an `Option`:
// a step (and its revert hook) can read it as `Option<&T>` or `Option<T>`, and an optional
// parameter of a hook reads a plain value as `Some`, on both engines.
use std::sync::{Arc, Mutex};
use taskflow::prelude::*;

type Log = Arc<Mutex<Vec<String>>>;

#[task(provides = size_gb)]
fn measure(requested: u32) -> u32 {
    requested
}

#[task]
fn big_enough(size_gb: &u32) -> bool {
    *size_gb >= 10
}

#[task(provides = backup_id)]
fn backup(size_gb: u32) -> String {
    format!("bk-{size_gb}")
}

flow! {
    flow Backup(requested: u32) -> (size_gb, backup_id) {
        graph [ measure, backup, measure -> backup if big_enough ]
    }
}

#[task(provides = report, revert = unreport)]
fn report(log: &Log, backup_id: Option<&str>, size_gb: Option<&u32>) -> String {
    log.lock().unwrap().push(format!("report {backup_id:?} {size_gb:?}"));
    format!("{} GB, backup {}", size_gb.unwrap(), backup_id.unwrap_or("skipped"))
}

#[revert]
fn unreport(log: &Log, backup_id: Option<&str>, size_gb: Option<&u32>) {
    log.lock().unwrap().push(format!("unreport {backup_id:?} {size_gb:?}"));
}

#[task(provides = copied)]
fn copy(backup_id: Option<String>) -> usize {
    backup_id.map_or(0, |id| id.len())
}

#[task]
fn fail(fail: &bool) -> Result<(), std::io::Error> {
    if *fail {
        Err(std::io::Error::other("asked to"))
    } else {
        Ok(())
    }
}

flow! {
    flow Outer(log: Log, requested: u32, fail: bool) -> (report, copied) {
        linear [ Backup, report, copy, fail ]
    }
}

fn main() {
    for engine in [Engine::serial(), Engine::parallel()] {
        for (requested, report, copied) in [(20, "20 GB, backup bk-20", 5), (5, "5 GB, backup skipped", 0)] {
            let log = Log::default();
            let out = engine
                .run(Outer, OuterInputs { log: log.clone(), requested, fail: false })
                .blocking()
                .unwrap();
            assert_eq!((out.report.as_str(), out.copied), (report, copied));
            let err = engine
                .run(Outer, OuterInputs { log: log.clone(), requested, fail: true })
                .blocking()
                .unwrap_err();
            assert_eq!(err.failed_step(), "fail");
            let id = (requested >= 10).then(|| format!("bk-{requested}"));
            let seen = format!("{:?} {:?}", id.as_deref(), Some(&requested));
            assert_eq!(
                *log.lock().unwrap(),
                [format!("report {seen}"), format!("report {seen}"), format!("unreport {seen}")]
            );
        }
    }
}
