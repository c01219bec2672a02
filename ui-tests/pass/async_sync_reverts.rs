// Sync and async tasks mixed; revert hooks taking each kind of parameter: task inputs (by value and by `&`), `result` and `failures`.
use std::sync::Mutex;

use taskflow::prelude::*;

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

#[derive(Debug, thiserror::Error)]
#[error("quota exceeded")]
struct Quota;

#[task(provides = server_id, revert = delete_server)]
async fn launch_server(image: &str, flavor: u32) -> Result<u32, Quota> {
    tokio::task::yield_now().await;
    log(format!("launch {image} {flavor}"));
    Ok(7)
}

// `result` and two task inputs, one owned and one borrowed.
#[revert]
async fn delete_server(result: TaskOutcome<&u32>, image: String, flavor: &u32) {
    log(format!("delete {} {image} {flavor}", result.unwrap()));
}

#[task(provides = (volume_id, device), revert = detach_volume)]
fn attach_volume(server_id: &u32) -> (u64, String) {
    log(format!("attach {server_id}"));
    (u64::from(*server_id) * 100, "/dev/vdb".to_owned())
}

// `failures` and a task input; a sync hook may return `Result<(), E>`.
#[revert]
fn detach_volume(failures: &[Failure], server_id: &u32) -> Result<(), Quota> {
    log(format!("detach {server_id} after {} failure(s)", failures.len()));
    Ok(())
}

#[task(revert = forget)]
async fn check(volume_id: &u64, fail: bool) -> Result<(), Quota> {
    log(format!("check {volume_id}"));
    if fail {
        Err(Quota)
    } else {
        Ok(())
    }
}

// The failed task itself is reverted with `Err(failure)`; a task with no output gets `TaskOutcome<()>`.
#[revert]
fn forget(result: TaskOutcome<()>) {
    log(format!("forget {}", result.unwrap_err().error()));
}

flow! {
    flow Boot(image: String, flavor: u32, fail: bool) -> (server_id, volume_id, device) {
        linear [ launch_server, attach_volume, check ]
    }
}

fn inputs(fail: bool) -> BootInputs {
    BootInputs { image: "debian".to_owned(), flavor: 2, fail }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let out = Engine::serial().run(Boot, inputs(false)).await.unwrap();
    assert_eq!((out.server_id, out.volume_id, out.device.as_str()), (7, 700, "/dev/vdb"));
    assert_eq!(*LOG.lock().unwrap(), ["launch debian 2", "attach 7", "check 700"]);

    LOG.lock().unwrap().clear();
    let err = Engine::serial().run(Boot, inputs(true)).await.unwrap_err();
    assert_eq!(err.failed_step(), "check");
    assert!(err.failures()[0].downcast_ref::<Quota>().is_some());
    assert_eq!(
        *LOG.lock().unwrap(),
        [
            "launch debian 2",
            "attach 7",
            "check 700",
            "forget quota exceeded",
            "detach 7 after 1 failure(s)",
            "delete 7 debian 2",
        ]
    );
}
