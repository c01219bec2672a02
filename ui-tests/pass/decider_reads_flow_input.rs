// A decider reads a flow input that no step reads: the input is used (by the decider).
use taskflow::prelude::*;

#[task(provides = size_gb)]
fn measure(requested: u32) -> u32 {
    requested
}

/// Backups run only where the caller allows them.
#[task]
fn allowed(backups_on: &bool) -> bool {
    *backups_on
}

#[task(provides = backup_id)]
fn backup(size_gb: u32) -> String {
    format!("bk-{size_gb}")
}

flow! {
    flow Backup(requested: u32, backups_on: bool) -> (size_gb, backup_id) {
        graph [ measure, backup, measure -> backup if allowed ]
    }
}

fn main() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let out = engine
            .run(Backup, BackupInputs { requested: 20, backups_on: true })
            .blocking()
            .unwrap();
        assert_eq!((out.size_gb, out.backup_id.as_deref()), (20, Some("bk-20")));
    }
    let out = Engine::serial()
        .run(Backup, BackupInputs { requested: 20, backups_on: false })
        .blocking()
        .unwrap();
    assert_eq!((out.size_gb, out.backup_id), (20, None));
}
