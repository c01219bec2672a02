//! Tasks exported for use in another crate's flows (`#[task(export)]`).
use std::sync::Mutex;

use taskflow::prelude::*;

/// What the tasks of this crate did, in order.
pub static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

/// Storage tasks, one module down, as a library would organise them.
pub mod storage {
    use super::*;

    /// Creates a volume of `size_gb` and returns its id.
    #[task(export, provides = volume_id, revert = delete_volume)]
    pub fn create_volume(size_gb: u32) -> u64 {
        log(format!("create_volume {size_gb}"));
        u64::from(size_gb) * 10
    }

    /// Deletes the volume again.
    #[revert]
    pub fn delete_volume(result: TaskOutcome<&u64>) {
        if let Ok(id) = result {
            log(format!("delete_volume {id}"));
        }
    }
}

/// Formats a volume id for display.
#[task(export, provides = label)]
pub async fn label_volume(volume_id: &u64) -> String {
    format!("vol-{volume_id}")
}
