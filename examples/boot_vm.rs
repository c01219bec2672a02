//! The motivating case: launch a server, attach a volume to it, configure it — and undo it all
//! when a step fails.
//!
//! ```text
//! cargo run --example boot_vm                           # a run that succeeds, then one that rolls back
//! cargo run --example boot_vm -- --fail-at configure    # only the failing run: exits 1, as a failure
//! ```
//!
//! Without arguments the flow runs twice, each time in an empty pretend cloud: once to success,
//! then with `configure` failing, to show the rollback and that it leaves no resource; it exits 0
//! when both runs end that way. `--fail-at` takes `launch_server`, `attach_volume` or `configure`
//! and runs once with that step failing, exiting 1 after the rollback like any program whose work
//! failed. Anything else is a usage error (exit 2).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use taskflow::prelude::*;

/// A pretend cloud: what exists right now, so the example can show that a rollback leaves nothing
/// behind.
#[derive(Clone, Default)]
struct Cloud {
    resources: Arc<Mutex<BTreeMap<String, String>>>,
    fail_at: Option<String>,
}

impl Cloud {
    fn create(&self, id: &str, what: String) {
        self.resources.lock().unwrap().insert(id.to_owned(), what);
    }

    fn remove(&self, id: &str) {
        self.resources.lock().unwrap().remove(id);
    }

    fn check(&self, step: &str) -> Result<(), CloudError> {
        match &self.fail_at {
            Some(at) if at == step => Err(CloudError(format!(
                "{step}: the API answered 503 Service Unavailable"
            ))),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cloud error: {0}")]
struct CloudError(String);

#[derive(Debug, Clone, PartialEq)]
struct ServerId(String);

#[derive(Debug, Clone, PartialEq)]
struct VolumeId(String);

fn say(line: impl AsRef<str>) {
    println!("  {}", line.as_ref());
}

/// Boots a server from `image`.
#[task(provides = server_id, revert = delete_server)]
async fn launch_server(cloud: &Cloud, image: &str) -> Result<ServerId, CloudError> {
    say(format!(
        "run    launch_server: booting a server from {image}"
    ));
    cloud.check("launch_server")?;
    let id = ServerId("srv-42".into());
    cloud.create(&id.0, format!("server running {image}"));
    Ok(id)
}

#[revert]
async fn delete_server(cloud: &Cloud, result: TaskOutcome<&ServerId>) {
    match result {
        Ok(id) => {
            cloud.remove(&id.0);
            say(format!("undo   launch_server: deleted server {}", id.0));
        }
        Err(_) => say("undo   launch_server: it failed before a server existed, nothing to delete"),
    }
}

/// Creates a volume of `size_gb` and attaches it to the server.
#[task(provides = volume_id, revert = detach_volume)]
async fn attach_volume(
    cloud: &Cloud,
    server_id: &ServerId,
    size_gb: u32,
) -> Result<VolumeId, CloudError> {
    say(format!(
        "run    attach_volume: attaching {size_gb} GB to {}",
        server_id.0
    ));
    cloud.check("attach_volume")?;
    let id = VolumeId("vol-7".into());
    cloud.create(&id.0, format!("{size_gb} GB volume on {}", server_id.0));
    Ok(id)
}

#[revert]
async fn detach_volume(cloud: &Cloud, server_id: &ServerId, result: TaskOutcome<&VolumeId>) {
    if let Ok(id) = result {
        cloud.remove(&id.0);
        say(format!(
            "undo   attach_volume: detached and deleted {} from {}",
            id.0, server_id.0
        ));
    }
}

/// Writes the configuration onto the server. A plain `fn`: sync and async tasks mix freely.
#[task(provides = config_version)]
fn configure(cloud: &Cloud, server_id: &ServerId, volume_id: &VolumeId) -> Result<u32, CloudError> {
    say(format!(
        "run    configure: mounting {} on {}",
        volume_id.0, server_id.0
    ));
    cloud.check("configure")?;
    Ok(1)
}

flow! {
    /// Boots a server with storage; on failure, undoes every step that ran.
    flow BootVm(cloud: Cloud, image: String, size_gb: u32) -> (server_id, volume_id, config_version) {
        linear [ launch_server, attach_volume, configure ]
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo(),
        [flag, step] if flag == "--fail-at" => {
            if !BootVm::graph().steps().iter().any(|s| s.name() == step) {
                eprintln!("boot_vm: --fail-at {step}: no such step (the steps are launch_server, attach_volume, configure)");
                return ExitCode::from(2);
            }
            println!("BootVm, with `{step}` failing:");
            match boot(Some(step)).0 {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: boot_vm [--fail-at launch_server|attach_volume|configure]");
            ExitCode::from(2)
        }
    }
}

/// The README's first command: a run that succeeds, then one that fails and is rolled back. The
/// failure is what the demo shows, not a failure of the demo, so it exits 0 when the runs end as
/// shown; a newcomer's first command should not look broken.
fn demo() -> ExitCode {
    println!("BootVm, every step succeeding:");
    let (succeeded, _) = boot(None);
    println!();
    println!("BootVm again, in a new empty cloud, this time with `configure` failing:");
    let (failed, left) = boot(Some("configure"));
    println!();
    if succeeded.is_err() || failed.is_ok() || !left.is_empty() {
        eprintln!("error: the runs above did not end as this demo expects");
        return ExitCode::FAILURE;
    }
    println!("The failed run was rolled back: the steps that had run were undone, newest first,");
    println!("and no resource is left. A failing run on its own exits 1, as a failure should:");
    println!("  cargo run --example boot_vm -- --fail-at configure");
    ExitCode::SUCCESS
}

/// Runs `BootVm` once in an empty cloud, with `fail_at` failing if given, and prints how it ended;
/// returns that and the resources left in the cloud.
fn boot(fail_at: Option<&str>) -> (Result<(), FlowError>, Vec<String>) {
    let cloud = Cloud {
        fail_at: fail_at.map(str::to_owned),
        ..Cloud::default()
    };
    let inputs = BootVmInputs {
        cloud: cloud.clone(),
        image: "debian-12".into(),
        size_gb: 20,
    };
    let result = Engine::serial().run(BootVm, inputs).blocking();
    let left: Vec<String> = cloud.resources.lock().unwrap().values().cloned().collect();
    match result {
        Ok(out) => {
            println!(
                "done: server {} with volume {} (config v{})",
                out.server_id.0, out.volume_id.0, out.config_version
            );
            println!("resources: {left:?}");
            (Ok(()), left)
        }
        Err(err) => {
            println!("flow ended {}: {err}", err.state());
            println!("resources left behind: {left:?}");
            (Err(err), left)
        }
    }
}
