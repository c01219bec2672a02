//! A crash during provisioning leaves no orphaned resource: the run is resumed from its store, a
//! later step fails for good, and the revert deletes everything, including what the dead process
//! created.
//!
//! ```text
//! cargo run --example orphans
//! ```
//! The parent starts itself again as a child process that provisions a server in a pretend cloud
//! (a directory, one file per resource) with `engine.run(..).durable(..)`, recording the run in a
//! `DirStore`. After creating a network port, a volume and the server, the child crashes (it kills
//! itself with SIGKILL) while it waits for a floating IP. A second child resumes the run with
//! `Engine::resume`: the cloud answers that the floating-IP quota is exhausted, the flow
//! reverts, and the revert hooks delete the port, the volume and the server by the ids that the
//! dead process's steps returned, which the store kept. Without the store, nothing would know
//! those ids: the parent prints what would have been left behind.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{DirStore, Store};
use taskflow::DurableError;

const FLOW_ID: &str = "provision-web-1";

/// What to provision: a flow input, stored with the run, hence `Serialize` and `Deserialize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServerSpec {
    name: String,
    image: String,
    volume_gb: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("quota exceeded: {0}")]
struct QuotaExceeded(String);

fn say(what: &str) {
    println!("  [pid {}] {what}", std::process::id());
}

/// Creates a resource in the pretend cloud: a file `cloud/<id>` saying what it is and who made it.
/// The id is new every time (the cloud picks it), so only the step's result knows it.
async fn create(kind: &str, what: &str) -> std::io::Result<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let id = format!("{kind}-{:04x}", nanos & 0xffff);
    std::fs::write(
        format!("cloud/{id}"),
        format!("{what}, created by pid {}", std::process::id()),
    )?;
    Ok(id)
}

/// Deletes a resource; one that is gone already is fine (a revert may run again after a crash).
fn delete(step: &str, id: &str) -> std::io::Result<()> {
    let path = format!("cloud/{id}");
    match std::fs::read_to_string(&path) {
        Ok(made_by) => {
            std::fs::remove_file(&path)?;
            say(&format!("undo {step}: deleted {id} ({made_by})"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            say(&format!("undo {step}: {id} is gone already"));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The cloud's resources, by id.
fn resources() -> std::io::Result<Vec<String>> {
    let mut ids = std::fs::read_dir("cloud")?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<Vec<_>>>()?;
    ids.sort();
    Ok(ids)
}

#[task(provides = port_id, revert = delete_port)]
async fn create_port(spec: &ServerSpec) -> std::io::Result<String> {
    let id = create("port", &format!("network port for {}", spec.name)).await?;
    say(&format!("create_port: created {id}"));
    Ok(id)
}

#[revert]
fn delete_port(result: TaskOutcome<&String>) -> std::io::Result<()> {
    result.map_or(Ok(()), |id| delete("create_port", id))
}

#[task(provides = volume_id, revert = delete_volume)]
async fn create_volume(spec: &ServerSpec) -> std::io::Result<String> {
    let id = create("vol", &format!("{} GB volume", spec.volume_gb)).await?;
    say(&format!("create_volume: created {id}"));
    Ok(id)
}

#[revert]
fn delete_volume(result: TaskOutcome<&String>) -> std::io::Result<()> {
    result.map_or(Ok(()), |id| delete("create_volume", id))
}

#[task(provides = server_id, revert = delete_server)]
async fn boot_server(spec: &ServerSpec, port_id: &str, volume_id: &str) -> std::io::Result<String> {
    let what = format!(
        "server {} ({}) on {port_id} with {volume_id}",
        spec.name, spec.image
    );
    let id = create("srv", &what).await?;
    say(&format!(
        "boot_server: booted {id} on {port_id} with {volume_id}"
    ));
    Ok(id)
}

#[revert]
fn delete_server(result: TaskOutcome<&String>) -> std::io::Result<()> {
    result.map_or(Ok(()), |id| delete("boot_server", id))
}

/// The first process dies while waiting for the answer; the second one gets it: no IP left.
#[task(provides = floating_ip)]
async fn assign_floating_ip(server_id: &str) -> Result<String, QuotaExceeded> {
    say(&format!(
        "assign_floating_ip: asking for a floating IP for {server_id}"
    ));
    if std::env::var_os("ORPHANS_CRASH").is_some() {
        say("assign_floating_ip: *the process crashes* (SIGKILL)");
        let _ = Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::thread::sleep(Duration::from_secs(60)); // the signal arrives first
    }
    Err(QuotaExceeded(
        "0 of 0 floating IPs left in project web".into(),
    ))
}

flow! {
    /// Provisions a server with its port and volume, and gives it a public address.
    flow Provision(spec: ServerSpec) -> (server_id, floating_ip) {
        linear [ create_port, create_volume, boot_server, assign_floating_ip ]
    }
}

/// The provisioning service (in the scratch directory): starts the run (`run`) or resumes it.
fn child(mode: &str) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = Arc::new(DirStore::open("flows")?);
    let engine = Engine::serial();
    let result = if mode == "run" {
        let spec = ServerSpec {
            name: "web-1".into(),
            image: "debian-12".into(),
            volume_gb: 20,
        };
        engine
            .run(Provision, ProvisionInputs { spec })
            .durable(store, FLOW_ID)
            .blocking()
    } else {
        say(&format!("resuming run {FLOW_ID} from flows/"));
        engine.resume(Provision, store, FLOW_ID).blocking()
    };
    match result {
        Ok(out) => say(&format!("done: {} at {}", out.server_id, out.floating_ip)),
        Err(DurableError::Failed(e)) => say(&format!("resumed: the flow ended {}: {e}", e.state())),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Each step's state and result, as the store recorded them.
fn print_store(store: &DirStore) -> anyhow::Result<FlowState> {
    let run = store.load_flow(FLOW_ID)?.context("no run in the store")?;
    println!("  run {FLOW_ID}: {}", run.flow.state);
    for atom in &run.atoms {
        let result = match (&atom.result, &atom.failure) {
            (Some(value), _) => format!("result {value}"),
            (None, Some(failure)) => format!("failed: {}", failure.message),
            (None, None) => "-".into(),
        };
        println!("  {:<18} {:<9} {result}", atom.name, atom.state.to_string());
    }
    Ok(run.flow.state)
}

fn parent() -> anyhow::Result<()> {
    let me = std::env::current_exe()?;
    println!("parent: starting child 1, which provisions web-1 with engine.run(..).durable(..)");
    let status = Command::new(&me)
        .args(["--child", "run"])
        .env("ORPHANS_CRASH", "1")
        .status()?;
    let orphans = resources()?;
    println!("parent: child 1 died ({status}); the cloud holds {orphans:?}; the store says:");
    let store = DirStore::open("flows")?;
    print_store(&store)?;

    println!("parent: starting child 2, which resumes the run with Engine::resume");
    let status = Command::new(&me).args(["--child", "resume"]).status()?;
    if !status.success() {
        bail!("child 2 failed: {status}");
    }
    println!("parent: the store says:");
    let state = print_store(&store)?;
    let left = resources()?;
    println!("resources left behind: {left:?}");
    println!("without the durable resume, left behind: {orphans:?}");
    println!(
        "  (what the dead process created: a new run would not know their ids, the store did)"
    );
    if orphans.is_empty() || !left.is_empty() || state != FlowState::Reverted {
        bail!("the resumed run did not clean up as it should have");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        return child(&std::env::args().nth(2).unwrap_or_default());
    }
    // Everything happens in a scratch directory: the store `flows/` and the cloud `cloud/`.
    let scratch =
        std::env::temp_dir().join(format!("taskflow-example-orphans-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("cloud"))?;
    std::env::set_current_dir(&scratch)?;
    println!(
        "scratch directory (the store flows/, the cloud cloud/): {}",
        scratch.display()
    );
    let outcome = parent();
    std::env::set_current_dir(std::env::temp_dir())?;
    match &outcome {
        Ok(()) => std::fs::remove_dir_all(&scratch)?,
        Err(_) => eprintln!("kept {} to look at", scratch.display()),
    }
    outcome
}
