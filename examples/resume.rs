//! A service killed in the middle of a deployment finishes it when it restarts: the run is
//! recorded in an SQLite store as it goes, and the restarted process resumes it from there.
//!
//! ```text
//! cargo run --example resume
//! ```
//! The example plays every role. The parent starts itself again as a child process, the
//! "service", which deploys a release with `engine.run(..).durable(..)`. While the third step runs, the
//! parent kills that child with SIGKILL, then starts a new child that calls
//! `Engine::resume`. The steps the store recorded SUCCESS are not run again (the database
//! migration is applied once); the step that was RUNNING runs again, so it is written to find
//! what its first run already did; the deployment finishes. The parent then prints the store's
//! record of the run and which process ran each step.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use taskflow::prelude::*;
use taskflow::store::{SqliteStore, Store};
use taskflow::StepState;

const FLOW_ID: &str = "deploy-shop-api";

/// A flow input: stored with the run (as JSON), so it derives `Serialize` and `Deserialize`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Release {
    service: String,
    version: String,
    instances: u32,
}

/// Prints what a step does, and notes in `effects.log` that this process ran the step.
fn say(ctx: &TaskContext, what: &str) -> std::io::Result<()> {
    let pid = std::process::id();
    println!("  [pid {pid}] {}: {what}", ctx.step());
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("effects.log")?;
    writeln!(log, "{pid} {}", ctx.step())
}

/// Real deployments take a while.
async fn work() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[task(provides = artifact)]
async fn fetch_release(ctx: &TaskContext, release: &Release) -> std::io::Result<String> {
    let name = format!("{}-{}.tar", release.service, release.version);
    say(ctx, &format!("downloading {name}"))?;
    work().await;
    std::fs::write(&name, "pretend tarball")?;
    Ok(name)
}

/// Not idempotent: migration 42 needs the schema at version 41 (the pretend database is the file
/// `schema`), so a second run would fail. It runs once: a step recorded SUCCESS never runs again.
#[task(provides = schema_version)]
async fn migrate_database(ctx: &TaskContext, artifact: &str) -> std::io::Result<u32> {
    say(ctx, &format!("applying migration 42 from {artifact}"))?;
    work().await;
    let found = std::fs::read_to_string("schema").unwrap_or_else(|_| "41".into());
    if found != "41" {
        let e = format!("migration 42 needs schema version 41, the database is at {found}");
        return Err(std::io::Error::other(e));
    }
    std::fs::write("schema", "42")?;
    Ok(42)
}

/// Idempotent: when it was killed half-way, it runs again after the restart and keeps the
/// instances its first run started (each is a file in the scratch directory).
#[task(provides = instances)]
async fn start_instances(ctx: &TaskContext, release: &Release) -> std::io::Result<Vec<String>> {
    let mut up = Vec::new();
    for i in 1..=release.instances {
        let name = format!("{}-{}-{i}", release.service, release.version);
        if Path::new(&name).exists() {
            say(ctx, &format!("{name} is already up, keeping it"))?;
        } else {
            work().await;
            std::fs::write(&name, "running")?;
            say(ctx, &format!("{name} is up"))?;
        }
        up.push(name);
    }
    Ok(up)
}

#[task(provides = endpoint)]
async fn switch_traffic(
    ctx: &TaskContext,
    release: &Release,
    instances: &[String],
) -> std::io::Result<String> {
    let list = instances.join(", ");
    say(ctx, &format!("load balancer -> {list}"))?;
    work().await;
    std::fs::write("lb.conf", list)?;
    Ok(format!("https://{}.example/", release.service))
}

flow! {
    /// Deploys a release: fetch it, migrate the database, start the instances, switch traffic.
    flow Deploy(release: Release) -> (endpoint, instances) {
        linear [ fetch_release, migrate_database, start_instances, switch_traffic ]
    }
}

/// The service (in the scratch directory): starts the deployment (`run`) or resumes it.
fn child(mode: &str) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("flows.db")?);
    let pid = std::process::id();
    let out = if mode == "run" {
        let release = Release {
            service: "shop-api".into(),
            version: "2.4.1".into(),
            instances: 3,
        };
        Engine::serial()
            .run(Deploy, DeployInputs { release })
            .durable(store, FLOW_ID)
            .blocking()?
    } else {
        println!("  [pid {pid}] resuming run {FLOW_ID} from flows.db");
        Engine::serial().resume(Deploy, store, FLOW_ID).blocking()?
    };
    let (live, n) = (out.endpoint, out.instances.len());
    let done = if mode == "run" { "done" } else { "resumed" };
    println!("  [pid {pid}] {done}: shop-api 2.4.1 is live at {live} on {n} instances");
    Ok(())
}

fn spawn(mode: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--child", mode])
        .spawn()
}

/// The store shows `start_instances` RUNNING and the effects log shows it started an instance:
/// the moment to pull the plug.
fn mid_flow() -> bool {
    let Ok(store) = SqliteStore::open_read_only("flows.db") else {
        return false; // not created yet
    };
    matches!(store.load_flow(FLOW_ID), Ok(Some(run))
        if run.atom("start_instances").is_some_and(|a| a.state == StepState::Running))
        && std::fs::read_to_string("effects.log").is_ok_and(|log| log.contains(" start_instances"))
}

fn parent() -> anyhow::Result<()> {
    println!(
        "parent: starting child 1, which deploys shop-api 2.4.1 with engine.run(..).durable(..)"
    );
    let mut first = spawn("run")?;
    while !mid_flow() {
        if let Some(status) = first.try_wait()? {
            bail!("child 1 ended before the kill: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill()?; // SIGKILL on Unix: nothing more runs or is written
    let status = first.wait()?;
    let store = SqliteStore::open_read_only("flows.db")?;
    let at_kill = store.load_flow(FLOW_ID)?.context("no run in the store")?;
    let states: Vec<String> = at_kill
        .atoms
        .iter()
        .map(|a| format!("{} {}", a.name, a.state))
        .collect();
    println!(
        "parent: killed child 1 ({status}); the store says: {}",
        states.join(", ")
    );

    println!("parent: starting child 2, which resumes the run with Engine::resume");
    let mut second = spawn("resume")?;
    let status = second.wait()?;
    if !status.success() {
        bail!("child 2 failed: {status}");
    }

    let run = store.load_flow(FLOW_ID)?.context("no run in the store")?;
    println!(
        "parent: the store's record of run {FLOW_ID}: {}",
        run.flow.state
    );
    println!("  {:<18} {:<9} {:<8} ran in", "step", "state", "attempt");
    let log = std::fs::read_to_string("effects.log")?;
    let (mut succeeded, mut ran_again) = (Vec::new(), Vec::new());
    for atom in &run.atoms {
        let ran = |child: &Child| {
            log.lines()
                .any(|l| l == format!("{} {}", child.id(), atom.name))
        };
        let ran_in = match (ran(&first), ran(&second)) {
            (true, true) => "child 1 (killed), child 2",
            (true, false) => "child 1 (killed)",
            _ => "child 2",
        };
        let state = atom.state.to_string();
        println!(
            "  {:<18} {state:<9} {:<8} {ran_in}",
            atom.name, atom.attempt
        );
        if at_kill
            .atom(&atom.name)
            .is_some_and(|a| a.state == StepState::Success)
        {
            succeeded.push(atom.name.as_str());
            if ran(&second) {
                ran_again.push(atom.name.as_str());
            }
        }
    }
    println!("  (the attempt counts retries: running again after a restart is the same attempt)");
    println!("parent: SUCCESS before the kill: {succeeded:?}; of those, ran again: {ran_again:?}");
    if run.flow.state != FlowState::Success || !ran_again.is_empty() {
        bail!("the resumed run did not finish as it should have");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        return child(&std::env::args().nth(2).unwrap_or_default());
    }
    // Everything happens in a scratch directory: the store, and what the service creates.
    let scratch =
        std::env::temp_dir().join(format!("taskflow-example-resume-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    std::env::set_current_dir(&scratch)?;
    println!(
        "scratch directory (the store flows.db, the service's files): {}",
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
