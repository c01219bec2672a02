//! The chaos test (issue 9, acceptance 3): three conductor processes run 300 jobs of a ten-step
//! flow with a retry scope and a revert path on a PostgreSQL server that the test starts
//! itself (`initdb` and `pg_ctl` of this machine's PostgreSQL, in a temporary directory, on a
//! free port, as the `postgres` user when the test runs as root), while the test:
//!
//! - kills conductors with SIGKILL in the middle of a step and starts new ones in their place
//!   (one at a time, and two at once);
//! - pauses one with SIGSTOP in the middle of a step, twice: until every job it held was taken
//!   over by the others and finished (past its claims and its runs' leases), and until each job
//!   it held was claimed by another conductor (past its claims, within its runs' leases, which
//!   are longer in its slot: the others wait for them), continuing it each time;
//! - cuts the connections of the conductor behind the test's TCP proxy (both sockets of each
//!   shut down) and refuses new ones for four seconds;
//! - restarts PostgreSQL twice (`pg_ctl restart -m immediate`, and an immediate stop with the
//!   server down for three seconds before it starts again).
//!
//! Conductors that fail (`Conductor::run` gives up when the board is out of reach for longer
//! than a claim holds) exit with status 2 and are started again; the test counts them.
//!
//! The flow: `s1, s2, s3, retry(Attempts(3)) [s4, s5, s6], s7, s8, s9, s10`, every step with a
//! revert hook. Job `n` (0..300) is *plain* (SUCCESS), *flaky* when `n % 10 == 7` (`s5` fails
//! in the scope's first attempt, which is reverted and run again: SUCCESS), or *doomed* when
//! `n % 10 == 3` (`s9` always fails: every step is reverted, REVERTED). Each step body appends
//! `start` and `end` lines (job, step, attempt, pid, CLOCK_MONOTONIC) to a shared side-effect
//! log in one write each (O_APPEND), and returns a [`Mark`] naming its own run (pid and start
//! time), so the store's records say which run of a body each recorded result came from;
//! revert hooks log `rstart`/`rend` with the mark of the result they undo. The test logs its
//! own actions (kill, dead, stop, stopped, cont, cut, uncut, pgdown, pgup, spawn, exit) there too.
//!
//! Afterwards, from the database (the job board and every job's run) and the log, it checks:
//!
//! - **outcomes**: every job DONE exactly once with the outcome of its kind, its run in the same
//!   final state, holding no lease, its steps in the states that outcome leaves (flaky jobs in
//!   their scope's second attempt), SUCCESS runs with the right output, the reverts of doomed
//!   and flaky jobs logged, and nothing of a job run after its last step (or last revert);
//! - **one process at a time**: no two runs of any body (step or revert hook) of one job
//!   overlapped in time, in any two processes. A killed process's body that never logged its end
//!   lasts until the process was reaped (the test logs `dead` after `wait`; nothing of the victim
//!   is logged after it), a paused process runs nothing between `stopped` (SIGSTOP sent and the
//!   process seen stopped in /proc) and `cont`, and any other body without an end is an error;
//! - **no step recorded SUCCESS ran again**: every recorded result (an atom's, or the one a revert
//!   hook undid) comes from a run of its body that logged its end and was the *last* start of that
//!   step in that attempt; and each step's run count in the store is at least the number of its
//!   body's starts in its recorded attempt (the count goes back to 1 when a step starts again
//!   over a SUCCESS, so a recorded SUCCESS that ran again shows fewer runs than starts);
//! - **no write of a fenced conductor landed**: every job's epoch is its number of claims, its
//!   completion was written after the last write to its run. Paused past its leases, the
//!   conductor, once continued, went on with at most the one body of each lost job that it had
//!   begun before the pause (recorded RUNNING: a pause can land between that record and the
//!   body's first line, and the body then logs its start after the pause), and none of what it
//!   finished after it was continued is recorded (the runs' fence). Paused within its leases
//!   (it still holds the runs' leases), the same holds, by the claim's fence on the runs' writes,
//!   and it did not finish the job whose `s3` it was in: the new holder ran the rest;
//! - **bounded time**: every job ended within 150 s of the conductors' start.
//!
//! This file is its own harness (`harness = false`): with `TF_CHAOS_CHILD` set, it is a conductor
//! process instead. `CHAOS_JOBS` changes the number of jobs (300), for trying things out;
//! `CHAOS_KEEP_LOG` keeps the side-effect log in the target directory also when the test passes
//! (it is kept there when it fails).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read as _, Seek as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use taskflow::conductor::{Conductor, ConductorOptions};
use taskflow::prelude::*;
use taskflow::store::{
    AsyncStore, Job, JobBoard, JobState, NewJob, PostgresOptions, PostgresStore, StoredFlow,
};
use taskflow::StepState;

mod common;
use common::{Attempts, Refused};

// ---- the flow

/// What every step needs, stored with the run as its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The side-effect log.
    log: String,
    /// The job's number (0..300), which also decides its kind.
    n: u32,
}

/// A step's output: which run of its body made it (pid and the body's start time), and the sum
/// of the step numbers so far (the flow's output is `1000 n + 55`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pid: u32,
    at: u64,
    sum: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Every step succeeds.
    Plain,
    /// `s5` fails in the retry scope's first attempt.
    Flaky,
    /// `s9` always fails: the run is reverted.
    Doomed,
}

fn kind(n: u32) -> Kind {
    match n % 10 {
        3 => Kind::Doomed,
        7 => Kind::Flaky,
        _ => Kind::Plain,
    }
}

/// Appends `line` to `log` in a single write (O_APPEND: lines of several processes never mix).
fn append(log: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// How long step `step`'s body takes: `s3` and `s7` 150 ms, the others 4 to 12 ms.
fn body_ms(step: u32, n: u32) -> u64 {
    match step {
        3 | 7 => SLOW_MS,
        _ => 4 + u64::from((n + step) % 3) * 4,
    }
}

const SLOW_MS: u64 = 150;

fn body(plan: &Plan, step: u32, attempt: u32, prev: &Mark) -> Result<Mark, Refused> {
    let pid = std::process::id();
    let n = plan.n;
    let at = common::mono();
    append(
        &plan.log,
        &format!("start {n} s{step} {attempt} {pid} {at}"),
    );
    std::thread::sleep(Duration::from_millis(body_ms(step, n)));
    let fails = match kind(n) {
        Kind::Plain => false,
        Kind::Flaky => step == 5 && attempt == 1,
        Kind::Doomed => step == 9,
    };
    let outcome = if fails { "failed" } else { "ok" };
    append(
        &plan.log,
        &format!(
            "end {n} s{step} {attempt} {pid} {} {at} {outcome}",
            common::mono()
        ),
    );
    if fails {
        return Err(Refused(step));
    }
    Ok(Mark {
        pid,
        at,
        sum: prev.sum + u64::from(step),
    })
}

fn undo(plan: &Plan, step: u32, attempt: u32, result: TaskOutcome<&Mark>) {
    let pid = std::process::id();
    let n = plan.n;
    let at = common::mono();
    let undoes = match result {
        Ok(mark) => format!("{}:{}", mark.pid, mark.at),
        Err(_) => "failed".to_owned(),
    };
    append(
        &plan.log,
        &format!("rstart {n} s{step} {attempt} {pid} {at} {undoes}"),
    );
    std::thread::sleep(Duration::from_millis(2));
    append(
        &plan.log,
        &format!("rend {n} s{step} {attempt} {pid} {} {at}", common::mono()),
    );
}

/// Steps outside the retry scope (attempt 1).
macro_rules! steps {
    ($($name:ident, $undo:ident, $k:literal: $prev:ident -> $out:ident;)*) => {$(
        #[task(provides = $out, revert = $undo)]
        fn $name(plan: &Plan, $prev: &Mark) -> Result<Mark, Refused> {
            body(plan, $k, 1, $prev)
        }
        #[revert]
        fn $undo(plan: &Plan, result: TaskOutcome<&Mark>) {
            undo(plan, $k, 1, result)
        }
    )*};
}

/// Steps inside the retry scope, which provides its attempt's number.
macro_rules! scoped_steps {
    ($($name:ident, $undo:ident, $k:literal: $prev:ident -> $out:ident;)*) => {$(
        #[task(provides = $out, revert = $undo)]
        fn $name(plan: &Plan, attempt: u32, $prev: &Mark) -> Result<Mark, Refused> {
            body(plan, $k, attempt, $prev)
        }
        #[revert]
        fn $undo(plan: &Plan, attempt: u32, result: TaskOutcome<&Mark>) {
            undo(plan, $k, attempt, result)
        }
    )*};
}

steps! {
    s1, u1, 1: v0 -> v1;
    s2, u2, 2: v1 -> v2;
    s3, u3, 3: v2 -> v3;
    s7, u7, 7: v6 -> v7;
    s8, u8, 8: v7 -> v8;
    s9, u9, 9: v8 -> v9;
    s10, u10, 10: v9 -> v10;
}

scoped_steps! {
    s4, u4, 4: v3 -> v4;
    s5, u5, 5: v4 -> v5;
    s6, u6, 6: v5 -> v6;
}

flow! {
    flow Chaos(plan: Plan, v0: Mark) -> (v10) {
        linear [
            s1, s2, s3,
            retry(Attempts(3) -> attempt: u32) linear [ s4, s5, s6 ],
            s7, s8, s9, s10,
        ]
    }
}

const STEPS: u32 = 10;
/// The scope's steps.
const SCOPED: [u32; 3] = [4, 5, 6];

// ---- the conductor process

const CHILD: &str = "TF_CHAOS_CHILD";
const CHILD_URL: &str = "TF_CHAOS_URL";
const CHILD_SCHEMA: &str = "TF_CHAOS_SCHEMA";
const SCHEMA: &str = "chaos";

/// How long a claim and a run's lease hold unless renewed.
const HOLD: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_millis(400);
/// The runs' lease of the paused conductor's slot: longer than its claims, so that it can be
/// paused past its claims and not past its leases.
const PAUSED_LEASE: Duration = Duration::from_secs(6);
const CHILD_LEASE_MS: &str = "TF_CHAOS_LEASE_MS";

/// A conductor on the store at `TF_CHAOS_URL`, until it is killed; its engine is parallel when
/// `TF_CHAOS_CHILD` is `parallel`, else serial, its runs' lease `TF_CHAOS_LEASE_MS`. Connecting
/// is tried again for a minute (the server may be restarting, or the proxy refusing);
/// `Conductor::run` failing exits with 2.
fn child() {
    let url = std::env::var(CHILD_URL).unwrap();
    let schema = std::env::var(CHILD_SCHEMA).unwrap();
    let parallel = std::env::var(CHILD).unwrap() == "parallel";
    let pid = std::process::id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let code = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        let store = loop {
            let options = PostgresOptions {
                schema: schema.clone(),
                pool_size: 8,
                // Under the claim hold and the lease (PostgresOptions says why).
                idle_in_transaction_timeout: Some(HOLD / 2),
            };
            let tried = tokio::time::timeout(
                Duration::from_secs(5),
                PostgresStore::connect_with(&url, options),
            )
            .await;
            match tried {
                Ok(Ok(store)) => break Arc::new(store),
                Ok(Err(e)) if Instant::now() > deadline => {
                    eprintln!("chaos conductor {pid}: cannot connect: {e}");
                    return 4;
                }
                Err(_) if Instant::now() > deadline => {
                    eprintln!("chaos conductor {pid}: cannot connect: no answer");
                    return 4;
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        let engine = if parallel {
            Engine::parallel().workers(2)
        } else {
            Engine::serial()
        };
        let lease = std::env::var(CHILD_LEASE_MS)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(HOLD, Duration::from_millis);
        let conductor = Conductor::new(store, engine.lease(lease, RENEW))
            .options(ConductorOptions {
                concurrency: 2,
                claim_hold: HOLD,
                heartbeat_every: RENEW,
                poll_every: Duration::from_millis(100),
                ..Default::default()
            })
            .register(|| Chaos);
        match conductor.run(std::future::pending()).await {
            Ok(report) => {
                eprintln!("chaos conductor {pid}: returned {report:?}");
                3
            }
            Err(e) => {
                eprintln!("chaos conductor {pid}: Conductor::run failed: {e}");
                2
            }
        }
    });
    std::process::exit(code);
}

// ---- the test's own PostgreSQL server

/// A PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1, stopped
/// (immediately) and removed when dropped, also when the test fails.
struct Cluster {
    /// The server's binaries (`initdb`, `pg_ctl`).
    bin: PathBuf,
    /// The temporary directory: the cluster, its log and socket in `pg/`, the side-effect log.
    root: PathBuf,
    port: u16,
    /// Whether commands run as the `postgres` user (the test runs as root: initdb refuses it).
    as_postgres: bool,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Cluster {
    /// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb` (or `TF_CHAOS_PG_BIN`).
    fn find_bin() -> PathBuf {
        if let Ok(bin) = std::env::var("TF_CHAOS_PG_BIN") {
            return PathBuf::from(bin);
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                        let bin = e.path().join("bin");
                        bin.join("initdb").exists().then_some((version, bin))
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        match versions.pop() {
            Some((_, bin)) => bin,
            None => panic!(
                "the chaos test starts a PostgreSQL server of its own and found no initdb in \
                 /usr/lib/postgresql/*/bin: install the PostgreSQL server package (or set \
                 TF_CHAOS_PG_BIN to the directory of initdb and pg_ctl)"
            ),
        }
    }

    fn start() -> Cluster {
        let bin = Self::find_bin();
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let root = std::env::temp_dir().join(format!(
            "taskflow-chaos-{}-{}",
            std::process::id(),
            common::mono()
        ));
        std::fs::create_dir_all(root.join("pg")).unwrap();
        let cluster = Cluster {
            bin,
            root,
            port: free_port(),
            as_postgres: root_user,
        };
        if root_user {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(cluster.pg_dir())
                .output()
                .expect("chown");
            assert!(
                owned.status.success(),
                "the chaos test runs PostgreSQL as the `postgres` user (initdb refuses root), \
                 and could not give it {}: {}",
                cluster.pg_dir().display(),
                output_text(&owned)
            );
        }
        let made = cluster
            .command("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("running initdb");
        assert!(
            made.status.success(),
            "initdb of the chaos test's PostgreSQL failed ({}): {}",
            made.status,
            output_text(&made)
        );
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data().join("postgresql.conf"))
            .unwrap();
        // fsync off: an immediate shutdown is not a crash of the machine, so nothing written to
        // the OS is lost, and commits stay synchronous (a commit that answered is in the WAL).
        write!(
            conf,
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 200\n",
            cluster.port,
            cluster.pg_dir().display()
        )
        .unwrap();
        drop(conf);
        cluster.pg_ctl(&["start"]).unwrap_or_else(|e| panic!("{e}"));
        cluster
    }

    fn pg_dir(&self) -> PathBuf {
        self.root.join("pg")
    }

    fn data(&self) -> PathBuf {
        self.pg_dir().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `pg_ctl <action> -D <data> -l <log> -w`, plus `extra`.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .args(args)
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.pg_dir().join("server.log"))
            .args(["-w", "-t", "60"])
            .output()
            .map_err(|e| format!("pg_ctl {args:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {args:?} of the chaos test's PostgreSQL failed ({}): {}",
                out.status,
                output_text(&out)
            ))
        }
    }

    fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ---- a TCP proxy between one conductor and the server

/// Forwards connections from its port to the server's; [`cut`](Self::cut) shuts down both sockets
/// of every connection through it and refuses new ones (accepted and closed at once) until
/// [`mend`](Self::mend).
struct Proxy {
    port: u16,
    refusing: Arc<AtomicBool>,
    open: Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>>,
    /// Connections cut so far, and refused.
    cut: AtomicUsize,
    refused: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusing = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<HashMap<u64, (TcpStream, TcpStream)>>> = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, o, f) = (refusing.clone(), open.clone(), refused.clone());
        std::thread::spawn(move || {
            let next = AtomicU64::new(0);
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if r.load(Ordering::SeqCst) {
                    f.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let id = next.fetch_add(1, Ordering::SeqCst);
                o.lock().unwrap().insert(
                    id,
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                );
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let o = o.clone();
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                        o.lock().unwrap().remove(&id);
                    });
                }
            }
        });
        Proxy {
            port,
            refusing,
            open,
            cut: AtomicUsize::new(0),
            refused,
        }
    }

    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for (_, (a, b)) in self.open.lock().unwrap().drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
            self.cut.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn mend(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

// ---- the conductor processes

/// The conductor processes: one per slot, started again when one exits or is killed. Slot 1 runs
/// the parallel engine, the others the serial one; slot 1 is the one paused, its runs' lease
/// [`PAUSED_LEASE`]; slot 2 connects through the proxy. Dropping this kills them all (a paused
/// one too).
struct Conductors {
    log: String,
    direct: String,
    proxied: String,
    slots: Vec<Child>,
    /// Every conductor process started, by slot.
    started: Vec<(usize, u32)>,
    /// Conductors that exited by themselves: (pid, status).
    exits: Vec<(u32, String)>,
}

const SLOTS: usize = 3;
const PROXIED: usize = 2;
const PAUSED: usize = 1;

impl Conductors {
    fn spawn(&mut self, slot: usize) -> Child {
        let url = if slot == PROXIED {
            &self.proxied
        } else {
            &self.direct
        };
        let child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, if slot == 1 { "parallel" } else { "serial" })
            .env(CHILD_URL, url)
            .env(CHILD_SCHEMA, SCHEMA)
            .env(
                CHILD_LEASE_MS,
                if slot == PAUSED { PAUSED_LEASE } else { HOLD }
                    .as_millis()
                    .to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting a conductor process");
        append(
            &self.log,
            &format!("spawn {slot} {} {}", child.id(), common::mono()),
        );
        self.started.push((slot, child.id()));
        child
    }

    fn start(log: &str, direct: String, proxied: String) -> Conductors {
        let mut c = Conductors {
            log: log.to_owned(),
            direct,
            proxied,
            slots: Vec::new(),
            started: Vec::new(),
            exits: Vec::new(),
        };
        for slot in 0..SLOTS {
            let child = c.spawn(slot);
            c.slots.push(child);
        }
        c
    }

    fn pid(&self, slot: usize) -> u32 {
        self.slots[slot].id()
    }

    /// Starts again every conductor that exited.
    fn reap(&mut self) {
        for slot in 0..SLOTS {
            if let Some(status) = self.slots[slot].try_wait().unwrap() {
                let pid = self.slots[slot].id();
                append(
                    &self.log,
                    &format!("exit {pid} {} {}", status, common::mono()),
                );
                self.exits.push((pid, status.to_string()));
                self.slots[slot] = self.spawn(slot);
            }
        }
    }

    /// SIGKILLs the conductors of `slots` together (each `kill` logged before its signal, `dead`
    /// once reaped), then starts new ones in their place.
    fn kill(&mut self, slots: &[usize]) {
        for &slot in slots {
            append(
                &self.log,
                &format!("kill {} {}", self.pid(slot), common::mono()),
            );
            let _ = self.slots[slot].kill();
        }
        for &slot in slots {
            self.slots[slot].wait().unwrap();
            append(
                &self.log,
                &format!("dead {} {}", self.pid(slot), common::mono()),
            );
        }
        for &slot in slots {
            self.slots[slot] = self.spawn(slot);
        }
    }
}

impl Drop for Conductors {
    fn drop(&mut self) {
        for child in &mut self.slots {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// Whether process `pid` is stopped (state `T` in /proc/<pid>/stat).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
        .unwrap_or(false)
}

// ---- the side-effect log

/// The log as read so far by the test while the run goes on: which bodies are under way, by pid.
struct Tail {
    file: std::fs::File,
    pos: u64,
    rest: Vec<u8>,
    /// Bodies started and not ended: pid -> (job, step, start time); a revert hook's step is
    /// `undo <step>`.
    open: HashMap<u32, Vec<(u32, String, u64)>>,
}

impl Tail {
    fn new(log: &str) -> Tail {
        Tail {
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(log)
                .unwrap(),
            pos: 0,
            rest: Vec::new(),
            open: HashMap::new(),
        }
    }

    fn read(&mut self) {
        self.file.seek(std::io::SeekFrom::Start(self.pos)).unwrap();
        let mut new = Vec::new();
        self.file.read_to_end(&mut new).unwrap();
        self.pos += new.len() as u64;
        self.rest.extend_from_slice(&new);
        let Some(last) = self.rest.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.rest.drain(..=last).collect();
        for line in String::from_utf8_lossy(&whole).lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[..] {
                [kind @ ("start" | "rstart"), n, step, _, pid, at, ..] => {
                    let step = match kind {
                        "start" => step.to_owned(),
                        _ => format!("undo {step}"),
                    };
                    self.open.entry(pid.parse().unwrap()).or_default().push((
                        n.parse().unwrap(),
                        step,
                        at.parse().unwrap(),
                    ));
                }
                ["end", n, step, _, pid, _, at, _] | ["rend", n, step, _, pid, _, at] => {
                    let step = match f[0] {
                        "end" => step.to_owned(),
                        _ => format!("undo {step}"),
                    };
                    let key: (u32, String, u64) = (n.parse().unwrap(), step, at.parse().unwrap());
                    if let Some(open) = self.open.get_mut(&pid.parse().unwrap()) {
                        open.retain(|o| *o != key);
                    }
                }
                _ => {}
            }
        }
    }

    /// The bodies `pid` has under way.
    fn open_of(&mut self, pid: u32) -> Vec<(u32, String, u64)> {
        self.read();
        self.open.get(&pid).cloned().unwrap_or_default()
    }
}

// ---- the test process

/// What the chaos did, for the checks and the summary.
#[derive(Default)]
struct Happened {
    kills: usize,
    kills_mid_body: usize,
    /// The pauses of the paused conductor.
    pauses: Vec<Pause>,
    pg_restarts: usize,
    cuts: usize,
    /// Failures found while the chaos went on.
    failures: Vec<String>,
}

/// How long the paused conductor was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PauseKind {
    /// Until every job it held was taken over and ended: past its claims and its runs' leases,
    /// so what it writes once continued is stopped by the runs' fence.
    PastLease,
    /// Past its claims (others claimed its jobs) but within its runs' leases (they wait for
    /// them): once continued, its heartbeats must find the claims lost (the job board's fence)
    /// and stop its runs at the step under way.
    PastClaim,
}

/// A pause of the paused conductor.
struct Pause {
    kind: PauseKind,
    pid: u32,
    /// When it was seen stopped, and when it was continued.
    stopped: u64,
    cont: u64,
    /// The jobs it held.
    jobs: BTreeSet<u32>,
    /// The bodies it had under way.
    under_way: Vec<(u32, String, u64)>,
    /// The slow body it had just started when it was stopped: job, step.
    slow: Option<(u32, String)>,
}

impl Pause {
    /// Whether `b` is a body the conductor paused past its runs' leases started, as the log shows,
    /// after it was stopped, of a job it lost meanwhile: the step it had begun (recorded RUNNING)
    /// just before the pause, going on after it (`check_fences` checks that nothing else did).
    fn stale(&self, b: &Body) -> bool {
        self.kind == PauseKind::PastLease
            && b.pid == self.pid
            && self.jobs.contains(&b.n)
            && b.from > self.stopped
    }
}

/// The test's state. Dropped in this order: the conductors (killed), then the server (stopped,
/// its directory removed).
struct Test {
    conductors: Conductors,
    tail: Tail,
    board: JobBoard,
    store: Arc<PostgresStore>,
    rt: tokio::runtime::Runtime,
    proxy: Proxy,
    cluster: Cluster,
    log: String,
    jobs: usize,
    done: Happened,
}

impl Test {
    fn note(&self, line: &str) {
        append(&self.log, &format!("{line} {}", common::mono()));
    }

    /// The board's jobs, or `None` while the server cannot answer.
    fn board_jobs(&self) -> Option<Vec<Job>> {
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(3), self.board.jobs()).await
            })
            .ok()
            .and_then(Result::ok)
    }

    fn finished(&self) -> Option<usize> {
        self.board_jobs()
            .map(|jobs| jobs.iter().filter(|j| j.state.is_final()).count())
    }

    /// Waits `d`, starting again conductors that exit meanwhile.
    fn pause_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.conductors.reap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `cond` holds or `limit` passes (false then), starting again conductors that
    /// exit meanwhile.
    fn wait_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Self) -> bool) -> bool {
        let until = Instant::now() + limit;
        loop {
            self.conductors.reap();
            if cond(self) {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `part` of the jobs (in thousandths) have ended.
    fn at(&mut self, thousandths: usize) {
        let want = self.jobs * thousandths / 1000;
        let reached = self.wait_until(Duration::from_secs(120), |t| {
            t.finished().is_some_and(|n| n >= want)
        });
        assert!(reached, "{want} jobs did not end within 120 s");
    }

    /// Waits (up to 2 s) until the conductor of `slot` has a step body under way.
    fn mid_body(&mut self, slot: usize) -> bool {
        let pid = self.conductors.pid(slot);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            if !self.tail.open_of(pid).is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    fn kill(&mut self, slots: &[usize]) {
        for &slot in slots {
            if self.mid_body(slot) {
                self.done.kills_mid_body += 1;
            }
        }
        self.conductors.kill(slots);
        self.done.kills += slots.len();
    }

    /// SIGSTOPs the conductor of `slot` just after it started a slow body (`s3` for
    /// [`PauseKind::PastClaim`]: the other slow one, `s7`, is still ahead), and continues it: for
    /// [`PauseKind::PastLease`] once every job it held was taken over and ended (at least twice
    /// a claim's hold), for [`PauseKind::PastClaim`] once each was claimed by another conductor
    /// (at least a claim's hold and a half), well within its runs' leases, and then waits until
    /// the job of that slow body has ended.
    fn pause(&mut self, slot: usize, kind: PauseKind) {
        let pid = self.conductors.pid(slot);
        let until = Instant::now() + Duration::from_secs(10);
        let slow_steps: &[&str] = match kind {
            PauseKind::PastLease => &["s3", "s7"],
            PauseKind::PastClaim => &["s3"],
        };
        let mut slow = None;
        while Instant::now() < until {
            let now = common::mono();
            slow = self
                .tail
                .open_of(pid)
                .into_iter()
                .find_map(|(n, step, at)| {
                    (slow_steps.contains(&step.as_str()) && now.saturating_sub(at) < 10_000_000)
                        .then_some((n, step))
                });
            if slow.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if slow.is_none() && kind == PauseKind::PastClaim {
            self.done.failures.push(format!(
                "conductor {pid} started no s3 in 10 s to be paused in (within its lease)"
            ));
        }
        self.note(&format!("stop {pid}"));
        signal("-STOP", pid);
        while !is_stopped(pid) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let stopped = common::mono();
        append(&self.log, &format!("stopped {pid} {stopped}"));
        let since = Instant::now();
        let under_way = self.tail.open_of(pid);
        let mut jobs: BTreeSet<u32> = under_way.iter().map(|(n, _, _)| *n).collect();
        let held = loop {
            if let Some(all) = self.board_jobs() {
                break all;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let held_by = |j: &Job, pid: u32| {
            j.state == JobState::Claimed && j.owner.as_ref().is_some_and(|o| o.pid == pid)
        };
        jobs.extend(held.iter().filter(|j| held_by(j, pid)).map(job_n));
        let (least, most) = match kind {
            PauseKind::PastLease => (HOLD * 2, Duration::from_secs(60)),
            PauseKind::PastClaim => (HOLD * 3 / 2, PAUSED_LEASE - HOLD * 3 / 4),
        };
        let ready = self.wait_until(most, |t| {
            since.elapsed() >= least
                && t.board_jobs().is_some_and(|all| {
                    all.iter()
                        .filter(|j| jobs.contains(&job_n(j)))
                        .all(|j| match kind {
                            PauseKind::PastLease => j.state.is_final(),
                            PauseKind::PastClaim => j.state.is_final() || !held_by(j, pid),
                        })
                })
        });
        if !ready {
            self.done.failures.push(format!(
                "the jobs {jobs:?} of conductor {pid}, paused ({kind:?}), were not all {} within \
                 {most:?}",
                match kind {
                    PauseKind::PastLease => "taken over and ended",
                    PauseKind::PastClaim => "claimed by other conductors",
                }
            ));
        }
        let cont = common::mono();
        append(&self.log, &format!("cont {pid} {cont}"));
        signal("-CONT", pid);
        if let (PauseKind::PastClaim, Some((n, _))) = (kind, &slow) {
            // Before any other chaos: its end is what `check_lost_claim` looks at.
            let n = *n;
            let ended = self.wait_until(Duration::from_secs(30), |t| {
                t.board_jobs()
                    .is_some_and(|all| all.iter().any(|j| job_n(j) == n && j.state.is_final()))
            });
            if !ended {
                self.done.failures.push(format!(
                    "job {n}, which conductor {pid} lost while paused, did not end within 30 s"
                ));
            }
        }
        self.done.pauses.push(Pause {
            kind,
            pid,
            stopped,
            cont,
            jobs,
            under_way,
            slow,
        });
    }

    /// Cuts every connection through the proxy, once its conductor is at work (a body under way),
    /// and refuses new ones for `d`.
    fn cut(&mut self, d: Duration) {
        let until = Instant::now() + Duration::from_secs(10);
        while !self.mid_body(PROXIED) && Instant::now() < until {
            self.conductors.reap();
        }
        self.note("cut");
        self.proxy.cut();
        self.pause_for(d);
        self.proxy.mend();
        self.note("uncut");
        self.done.cuts += 1;
    }

    /// Restarts the server: at once (`pg_ctl restart -m immediate`) when `down` is zero, else
    /// stopped immediately and started `down` later.
    fn restart_postgres(&mut self, down: Duration) {
        self.note("pgdown");
        if down.is_zero() {
            self.cluster
                .pg_ctl(&["restart", "-m", "immediate"])
                .unwrap_or_else(|e| panic!("{e}"));
        } else {
            self.cluster
                .pg_ctl(&["stop", "-m", "immediate"])
                .unwrap_or_else(|e| panic!("{e}"));
            self.pause_for(down);
            self.cluster
                .pg_ctl(&["start"])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        self.note("pgup");
        self.done.pg_restarts += 1;
    }
}

/// Job `n` of a board job (its inputs' `plan.n`).
fn job_n(job: &Job) -> u32 {
    job.inputs["plan"]["n"].as_u64().expect("plan.n") as u32
}

fn jobs_wanted() -> usize {
    std::env::var("CHAOS_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn main() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("chaos: test");
        return;
    }
    // A name filter (`cargo test -- name`) that does not match this test skips it.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "chaos".contains(f.as_str())) {
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start();
    let log = cluster
        .root
        .join("effects.log")
        .to_string_lossy()
        .into_owned();
    let proxy = Proxy::start(cluster.port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = cluster.url(cluster.port);
    let store = rt
        .block_on(PostgresStore::connect_with(
            &url,
            PostgresOptions {
                schema: SCHEMA.into(),
                pool_size: 4,
                ..Default::default()
            },
        ))
        .unwrap_or_else(|e| panic!("the chaos test's PostgreSQL at {url}: {e}"));
    let store = Arc::new(store);
    let board = JobBoard::new(store.clone());
    let jobs = jobs_wanted();
    rt.block_on(async {
        for n in 0..jobs as u32 {
            let mut job = NewJob::of::<Chaos>(&ChaosInputs {
                plan: Plan {
                    log: log.clone(),
                    n,
                },
                v0: Mark {
                    pid: 0,
                    at: 0,
                    sum: 1000 * u64::from(n),
                },
            })
            .unwrap()
            .idempotency_key(format!("chaos-{n}"));
            // The chaos takes each job over far more often than a job that kills its conductors
            // would be (the default 5): every server restart abandons every run under way.
            job.max_takeovers = 1000;
            board.post(&job).await.unwrap();
        }
    });
    let t0 = Instant::now();
    let conductors = Conductors::start(&log, url.clone(), cluster.url(proxy.port));
    let mut t = Test {
        tail: Tail::new(&log),
        cluster,
        proxy,
        rt,
        store,
        board,
        conductors,
        log: log.clone(),
        jobs,
        done: Happened::default(),
    };

    t.at(50);
    t.kill(&[0]);
    t.at(120);
    t.pause(PAUSED, PauseKind::PastLease);
    t.at(220);
    t.restart_postgres(Duration::ZERO);
    t.at(310);
    t.kill(&[PROXIED]);
    t.at(390);
    t.cut(Duration::from_secs(4));
    t.at(470);
    t.pause(PAUSED, PauseKind::PastClaim);
    t.at(550);
    t.kill(&[0, PAUSED]);
    t.at(630);
    t.restart_postgres(Duration::from_secs(3));
    t.at(730);
    t.kill(&[0]);
    t.at(820);
    t.kill(&[PAUSED]);

    let all_ended = t.wait_until(Duration::from_secs(200), |t| {
        t.finished().is_some_and(|n| n == jobs)
    });
    let took = t0.elapsed();
    let mut final_jobs = t.board_jobs().unwrap_or_default();
    if !all_ended {
        final_jobs.retain(|j| !j.state.is_final());
        t.done
            .failures
            .push(format!("jobs did not end within {took:?}: {final_jobs:#?}"));
    }
    // Every conductor stops here (logged as kills: nothing of theirs runs any more).
    for slot in 0..SLOTS {
        let pid = t.conductors.pid(slot);
        t.note(&format!("kill {pid}"));
        let _ = t.conductors.slots[slot].kill();
        t.conductors.slots[slot].wait().unwrap();
        t.note(&format!("dead {pid}"));
    }

    let mut failures = std::mem::take(&mut t.done.failures);
    if all_ended {
        failures.extend(check(&t));
    }
    if took > Duration::from_secs(150) {
        failures.push(format!("the jobs took {took:?} to end, more than 150 s"));
    }
    let summary = summary(&t, took);
    println!(
        "chaos: {summary}; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-effects.log");
    if std::env::var_os("CHAOS_KEEP_LOG").is_some() {
        let _ = std::fs::copy(&log, &keep);
    }
    if !failures.is_empty() {
        let _ = std::fs::copy(&log, &keep);
        for f in &failures {
            println!("  {f}");
        }
        println!("  (the side-effect log is kept at {})", keep.display());
    }
    assert!(failures.is_empty(), "{} failures", failures.len());
}

// ---- the checks

/// One run of a step body (or of a revert hook) as the log shows it.
#[derive(Debug, Clone)]
struct Body {
    n: u32,
    step: String,
    attempt: u32,
    pid: u32,
    revert: bool,
    from: u64,
    /// Its end line's time.
    until: Option<u64>,
    /// The step body's end said `ok`.
    ok: bool,
    /// A revert hook's: the mark (pid, start) of the result it undid; `None` for its task's own
    /// failure.
    undoes: Option<(u32, u64)>,
}

#[derive(Default)]
struct Log {
    bodies: Vec<Body>,
    /// pid -> time it was reaped after its SIGKILL.
    dead: HashMap<u32, u64>,
    /// The last time each pid logged.
    last_line: HashMap<u32, u64>,
}

fn read_log(path: &str) -> Result<Log, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut log = Log::default();
    let mut at: HashMap<(bool, u32, String, u32, u32, u64), usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let bad = || format!("bad log line {}: {line:?}", i + 1);
        let f: Vec<&str> = line.split(' ').collect();
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        match f[..] {
            [kind @ ("start" | "rstart"), n, step, attempt, pid, t, ref rest @ ..] => {
                let revert = kind == "rstart";
                let undoes = match rest {
                    [] if !revert => None,
                    ["failed"] if revert => None,
                    [mark] if revert => {
                        let (p, a) = mark.split_once(':').ok_or_else(bad)?;
                        Some((num(p)? as u32, num(a)?))
                    }
                    _ => return Err(bad()),
                };
                let body = Body {
                    n: num(n)? as u32,
                    step: step.to_owned(),
                    attempt: num(attempt)? as u32,
                    pid: num(pid)? as u32,
                    revert,
                    from: num(t)?,
                    until: None,
                    ok: false,
                    undoes,
                };
                log.last_line.insert(body.pid, body.from);
                at.insert(
                    (
                        revert,
                        body.n,
                        body.step.clone(),
                        body.attempt,
                        body.pid,
                        body.from,
                    ),
                    log.bodies.len(),
                );
                log.bodies.push(body);
            }
            [kind @ ("end" | "rend"), n, step, attempt, pid, t, from, ref rest @ ..] => {
                let revert = kind == "rend";
                let key = (
                    revert,
                    num(n)? as u32,
                    step.to_owned(),
                    num(attempt)? as u32,
                    num(pid)? as u32,
                    num(from)?,
                );
                let &i = at
                    .get(&key)
                    .ok_or_else(|| format!("line {}: an end without its start: {line}", i + 1))?;
                let body = &mut log.bodies[i];
                body.until = Some(num(t)?);
                body.ok = revert || rest == ["ok"];
                log.last_line.insert(body.pid, num(t)?);
            }
            ["dead", pid, t] => {
                log.dead.insert(num(pid)? as u32, num(t)?);
            }
            ["kill" | "stop" | "stopped" | "cont" | "spawn" | "exit" | "cut" | "uncut"
            | "pgdown" | "pgup", ..] => {}
            _ => return Err(bad()),
        }
    }
    Ok(log)
}

/// The expected final state of job `n`'s run.
fn outcome(n: u32) -> FlowState {
    match kind(n) {
        Kind::Doomed => FlowState::Reverted,
        _ => FlowState::Success,
    }
}

/// Every check of the module's documentation; returns what failed.
fn check(t: &Test) -> Vec<String> {
    let mut failures = Vec::new();
    let log = match read_log(&t.log) {
        Ok(log) => log,
        Err(e) => return vec![e],
    };
    let jobs = match t.board_jobs() {
        Some(jobs) => jobs,
        None => return vec!["the board cannot be read".into()],
    };
    // Each job's run, by n.
    let mut runs: BTreeMap<u32, (Job, StoredFlow)> = BTreeMap::new();
    for job in jobs {
        let n = job_n(&job);
        let run =
            t.rt.block_on(t.store.load_flow(&job.id.run_id()))
                .unwrap_or_else(|e| panic!("loading the run of job {n}: {e}"));
        match run {
            Some(run) => {
                if runs.insert(n, (job, run)).is_some() {
                    failures.push(format!("job {n} is on the board twice"));
                }
            }
            None => failures.push(format!("job {n} ({}) has no run", job.id)),
        }
    }
    if runs.len() != t.jobs {
        failures.push(format!("{} jobs with runs, not {}", runs.len(), t.jobs));
    }
    let mut bodies: BTreeMap<u32, Vec<&Body>> = BTreeMap::new();
    for b in &log.bodies {
        bodies.entry(b.n).or_default().push(b);
    }
    let pauses = &t.done.pauses;
    for (n, (job, run)) in &runs {
        let all = bodies.get(n).cloned().unwrap_or_default();
        // Without what the paused conductor ran of this job once it had lost it (the step it
        // had begun before the pause, which `check_fences` judges).
        let current: Vec<&Body> = all
            .iter()
            .copied()
            .filter(|b| !pauses.iter().any(|p| p.stale(b)))
            .collect();
        let mut fail = |what: String| failures.push(format!("job {n} ({:?}): {what}", kind(*n)));
        check_outcome(*n, job, run, &current, &mut fail);
        check_exclusive(&all, &log, pauses, &mut fail);
        check_no_rerun(run, &all, &current, &mut fail);
        check_fences(*n, job, run, &all, pauses, &mut fail);
    }
    // Nothing of a killed process is logged after it was reaped.
    for (pid, dead) in &log.dead {
        if log.last_line.get(pid).is_some_and(|t| t > dead) {
            failures.push(format!(
                "process {pid} logged after it was killed and reaped"
            ));
        }
    }
    failures
}

/// The job is DONE once with its outcome; its run is in that state, released, with its steps as
/// that outcome leaves them; the reverts were logged; nothing ran after the job's last body.
fn check_outcome(
    n: u32,
    job: &Job,
    run: &StoredFlow,
    bodies: &[&Body],
    fail: &mut impl FnMut(String),
) {
    let want = outcome(n);
    if job.state != JobState::Done || job.outcome != Some(want) {
        fail(format!(
            "the job is {} with outcome {:?}, not DONE with {want}",
            job.state, job.outcome
        ));
    }
    if run.flow.state != want || run.flow.lease.is_some() {
        fail(format!(
            "its run is {} with lease {:?}, not {want} and released",
            run.flow.state, run.flow.lease
        ));
    }
    let flaky = kind(n) == Kind::Flaky;
    for k in 1..=STEPS {
        let step = format!("s{k}");
        let atom = run.atom(&step);
        let attempt_wanted = if flaky && SCOPED.contains(&k) { 2 } else { 1 };
        let got = atom.map(|a| (a.state, a.attempt));
        let right = match (kind(n), got) {
            // Never started (the parallel engine records what it has not started PENDING).
            (Kind::Doomed, None | Some((StepState::Pending, _))) if k == 10 => true,
            (Kind::Doomed, Some((StepState::Reverted, a))) if k < 10 => a == attempt_wanted,
            (Kind::Plain | Kind::Flaky, Some((StepState::Success, a))) => a == attempt_wanted,
            _ => false,
        };
        if !right {
            fail(format!(
                "{step} is recorded (state, attempt) {got:?}, not as a {want} run leaves it"
            ));
        }
    }
    let retry = run
        .retries
        .iter()
        .find(|r| r.flow.is_empty() && r.scope == 0);
    // No record: the scope never started a second attempt.
    let retry_attempt = retry.map_or((1, 0), |r| (r.attempt, r.history.len()));
    let wanted = if flaky { (2, 1) } else { (1, 0) };
    if retry_attempt != wanted {
        fail(format!(
            "its retry scope is at (attempt, failed attempts) {retry_attempt:?}, not {wanted:?}"
        ));
    }
    if want == FlowState::Success {
        let sum = run
            .atom("s10")
            .and_then(|a| a.result.clone())
            .and_then(|r| serde_json::from_value::<Mark>(r).ok())
            .map(|m| m.sum);
        if sum != Some(1000 * u64::from(n) + 55) {
            fail(format!("its output sums to {sum:?}"));
        }
    }
    // The reverts this kind of job must have made: (step, attempt, of a result or not).
    let reverts: Vec<(u32, u32, bool)> = match kind(n) {
        Kind::Plain => vec![],
        Kind::Flaky => vec![(4, 1, true), (5, 1, false)],
        Kind::Doomed => (1..=8)
            .map(|k| (k, 1, true))
            .chain([(9, 1, false)])
            .collect(),
    };
    for &(k, attempt, of_result) in &reverts {
        let done = bodies.iter().any(|b| {
            b.revert
                && b.step == format!("s{k}")
                && b.attempt == attempt
                && b.until.is_some()
                && b.undoes.is_some() == of_result
        });
        if !done {
            fail(format!("s{k} (attempt {attempt}) was not reverted"));
        }
    }
    let unexpected: Vec<String> = bodies
        .iter()
        .filter(|b| b.revert)
        .filter(|b| {
            !reverts
                .iter()
                .any(|&(k, a, _)| b.step == format!("s{k}") && b.attempt == a)
        })
        .map(|b| format!("{} attempt {}", b.step, b.attempt))
        .collect();
    if !unexpected.is_empty() {
        fail(format!("reverted what it should not have: {unexpected:?}"));
    }
    // Its last body: s10 for a SUCCESS, the revert of s1 for a REVERTED run.
    let last = bodies.iter().max_by_key(|b| b.from);
    let ends = match want {
        FlowState::Success => last.is_some_and(|b| !b.revert && b.step == "s10" && b.ok),
        _ => last.is_some_and(|b| b.revert && b.step == "s1" && b.until.is_some()),
    };
    if !ends {
        fail(format!("the last thing it ran is {last:?}"));
    }
}

/// No two runs of bodies of the job overlapped in time (see the module's documentation for when
/// a killed or paused process's body ends).
fn check_exclusive(bodies: &[&Body], log: &Log, pauses: &[Pause], fail: &mut impl FnMut(String)) {
    let mut spans: Vec<(u64, u64, &Body)> = Vec::new();
    for b in bodies {
        let until = match (b.until, log.dead.get(&b.pid)) {
            (Some(until), _) => until,
            (None, Some(&dead)) => dead,
            (None, None) => {
                fail(format!(
                    "a body that never ended, in a process that was not killed: {b:?}"
                ));
                continue;
            }
        };
        // Less the times its process was stopped.
        let mut parts = vec![(b.from, until)];
        for p in pauses.iter().filter(|p| p.pid == b.pid) {
            let inside = |t: u64| t > p.stopped && t < p.cont;
            if inside(b.from) || inside(until) {
                fail(format!(
                    "a body of the paused process {} logged while it was stopped: {b:?}",
                    p.pid
                ));
            }
            parts = parts
                .into_iter()
                .flat_map(|(from, until)| {
                    if from < p.cont && until > p.stopped {
                        vec![(from, p.stopped), (p.cont, until)]
                    } else {
                        vec![(from, until)]
                    }
                })
                .collect();
        }
        spans.extend(parts.into_iter().map(|(from, until)| (from, until, *b)));
    }
    spans.sort_by_key(|s| s.0);
    let mut latest: Option<(u64, &Body)> = None;
    for (from, until, b) in spans {
        if let Some((end, other)) = latest {
            if from < end {
                fail(format!("{b:?} ran while {other:?} still ran"));
            }
        }
        if latest.is_none_or(|(end, _)| until > end) {
            latest = Some((until, b));
        }
    }
}

/// The runs of `step`'s body in `attempt`, oldest first.
fn starts<'a>(bodies: &[&'a Body], step: &str, attempt: u32) -> Vec<&'a Body> {
    let mut s: Vec<&Body> = bodies
        .iter()
        .copied()
        .filter(|b| !b.revert && b.step == step && b.attempt == attempt)
        .collect();
    s.sort_by_key(|b| b.from);
    s
}

/// `mark`, a result of `step` in `attempt` that `by` recorded or used, comes from a run of its
/// body that ended well and is the last start of that step in that attempt.
fn check_recorded(
    bodies: &[&Body],
    step: &str,
    attempt: u32,
    mark: (u32, u64),
    by: &str,
    fail: &mut impl FnMut(String),
) {
    let s = starts(bodies, step, attempt);
    let Some(i) = s.iter().position(|b| (b.pid, b.from) == mark) else {
        fail(format!(
            "{by}: {step} (attempt {attempt}) of run {mark:?}, which the log does not have"
        ));
        return;
    };
    if !s[i].ok {
        fail(format!(
            "{by}: {step} (attempt {attempt}) of a run that did not end well: {:?}",
            s[i]
        ));
    }
    if i + 1 != s.len() {
        fail(format!(
            "{by}: {step} (attempt {attempt}) of run {mark:?}, but it started again after it: {:?}",
            &s[i + 1..]
        ));
    }
}

/// Every recorded result comes from the last start of its step in its attempt, which ended; the
/// store counts at least as many runs of each step's attempt as the log shows starts (`all` of
/// them: a body that starts without a RUNNING record of its own, over a recorded SUCCESS, shows
/// as more starts than runs). `current` leaves out the paused conductor's last body of a job it
/// lost.
fn check_no_rerun(
    run: &StoredFlow,
    all: &[&Body],
    current: &[&Body],
    fail: &mut impl FnMut(String),
) {
    for atom in &run.atoms {
        if let Some(result) = &atom.result {
            match serde_json::from_value::<Mark>(result.clone()) {
                Ok(m) => check_recorded(
                    current,
                    &atom.name,
                    atom.attempt,
                    (m.pid, m.at),
                    "the store's result",
                    fail,
                ),
                Err(e) => fail(format!("{}'s result {result}: {e}", atom.name)),
            }
        }
        let n = starts(all, &atom.name, atom.attempt).len();
        if (atom.runs as usize) < n {
            fail(format!(
                "{} (attempt {}) was started {n} times, but the store counts {} runs: it \
                 started again after its SUCCESS was recorded",
                atom.name, atom.attempt, atom.runs
            ));
        }
    }
    for b in current.iter().filter(|b| b.revert) {
        if let Some(mark) = b.undoes {
            check_recorded(
                current,
                &b.step,
                b.attempt,
                mark,
                "a revert hook undid",
                fail,
            );
        }
    }
}

/// The job's epoch is its number of claims, it was completed after its run's last write, and the
/// paused conductor, continued, added nothing to the jobs it had lost (see the two pauses).
fn check_fences(
    n: u32,
    job: &Job,
    run: &StoredFlow,
    bodies: &[&Body],
    pauses: &[Pause],
    fail: &mut impl FnMut(String),
) {
    if job.epoch != u64::from(job.claims) || job.owner.is_some() || job.claimed_until.is_some() {
        fail(format!(
            "epoch {} after {} claims, owner {:?}, claimed until {:?}",
            job.epoch, job.claims, job.owner, job.claimed_until
        ));
    }
    if job.updated_at < run.flow.updated_at {
        fail(format!(
            "the job was completed at {} but its run was written at {}",
            job.updated_at, run.flow.updated_at
        ));
    }
    for p in pauses.iter().filter(|p| p.jobs.contains(&n)) {
        match p.kind {
            PauseKind::PastLease => check_lost_lease(p, run, bodies, fail),
            // The run's writes are fenced by the claim too (`PostgresStore::for_claim`): once
            // another conductor claimed the job, nothing more of the paused one lands, though
            // it still holds the run's lease.
            PauseKind::PastClaim => {
                check_lost_lease(p, run, bodies, fail);
                check_lost_claim(p, bodies, fail);
            }
        }
    }
}

/// The conductor paused past its claim (and, for [`PauseKind::PastLease`], its runs' leases)
/// lost the job at the claim's fence (and the lease's): a linear flow runs one body at a time, and only the one it had under way, or had begun
/// (recorded RUNNING) and not yet logged, may go on once it is continued (a second one would
/// need a checkpoint of the conductor's to land after it lost the run); nothing it finished after
/// it was continued is recorded.
fn check_lost_lease(p: &Pause, run: &StoredFlow, bodies: &[&Body], fail: &mut impl FnMut(String)) {
    let went_on: Vec<&&Body> = bodies
        .iter()
        .filter(|b| b.pid == p.pid && b.until.is_none_or(|u| u > p.stopped))
        .collect();
    if went_on.len() > 1 {
        fail(format!(
            "the paused conductor {}, continued, ran more of the job it had lost: {went_on:?}",
            p.pid
        ));
    }
    let late: Vec<(u32, u64)> = bodies
        .iter()
        .filter(|b| b.pid == p.pid && b.until.is_some_and(|u| u > p.cont))
        .map(|b| (b.pid, b.from))
        .collect();
    for atom in &run.atoms {
        let mark = atom
            .result
            .clone()
            .and_then(|r| serde_json::from_value::<Mark>(r).ok());
        if let Some(m) = mark.filter(|m| late.contains(&(m.pid, m.at))) {
            fail(format!(
                "{}'s result was made by the paused conductor after it lost the job: {m:?}",
                atom.name
            ));
        }
    }
}

/// The conductor paused past its claim but within its runs' leases still held the run of the
/// job whose `s3` it had just started, and another conductor the claim (waiting for the run's
/// lease). Once continued, it may go on for a step or two (the body's sleep ran out during the
/// pause, and its next checkpoint races its heartbeat), but its heartbeat must find the claim
/// lost and stop the run at a step boundary, long before the job's end (`s7` alone takes 150 ms):
/// the job's last body is the new holder's. (Without the claim's fence its heartbeats renew the
/// other conductor's claim, and it runs the job to its end and completes it.)
fn check_lost_claim(p: &Pause, bodies: &[&Body], fail: &mut impl FnMut(String)) {
    let Some((slow_job, _)) = &p.slow else {
        return;
    };
    let mine: Vec<&&Body> = bodies.iter().filter(|b| b.n == *slow_job).collect();
    let last = mine.iter().max_by_key(|b| b.from);
    if last.is_some_and(|b| b.pid == p.pid) {
        let after: Vec<&&&Body> = mine
            .iter()
            .filter(|b| b.pid == p.pid && b.from > p.stopped)
            .collect();
        fail(format!(
            "the conductor {} paused (within its lease) after another claimed the job finished \
             it once continued, its claim lost: {after:?}",
            p.pid
        ));
    }
}

fn summary(t: &Test, took: Duration) -> String {
    let log = read_log(&t.log).unwrap_or_default();
    let mut starts: HashMap<(u32, &str, u32), usize> = HashMap::new();
    for b in log.bodies.iter().filter(|b| !b.revert) {
        *starts.entry((b.n, &b.step, b.attempt)).or_default() += 1;
    }
    let again: usize = starts.values().map(|&s| s - 1).sum();
    let jobs = t.board_jobs().unwrap_or_default();
    let takeovers: u32 = jobs.iter().map(|j| j.takeovers).sum();
    let most = jobs.iter().map(|j| j.takeovers).max().unwrap_or(0);
    let pause = t
        .done
        .pauses
        .iter()
        .map(|p| {
            // What it ran of the job of its slow body once continued, and who ran that job's last
            // body.
            let of_slow: Vec<&Body> = log
                .bodies
                .iter()
                .filter(|b| p.slow.as_ref().is_some_and(|(n, _)| b.n == *n))
                .collect();
            let after = of_slow
                .iter()
                .filter(|b| b.pid == p.pid && b.from > p.stopped)
                .count();
            let last = of_slow.iter().max_by_key(|b| b.from).map(|b| b.pid);
            format!(
                "{} paused {:.1} s ({:?}) holding jobs {:?}, {} bodies under way, slow body {:?} \
                 (then {after} more bodies of it, its last body in {last:?})",
                p.pid,
                (p.cont - p.stopped) as f64 / 1e9,
                p.kind,
                p.jobs,
                p.under_way.len(),
                p.slow
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{} jobs ended in {:.1} s; {} conductors killed ({} in a body), {}; {} proxy cut(s) \
         ({} connections cut, {} refused); {} PostgreSQL restarts; {} conductors exited by \
         themselves {:?}; {} conductor processes in all; {} take-overs (at most {} of a job); {} \
         step bodies ran again",
        jobs.len(),
        took.as_secs_f64(),
        t.done.kills,
        t.done.kills_mid_body,
        pause,
        t.done.cuts,
        t.proxy.cut.load(Ordering::SeqCst),
        t.proxy.refused.load(Ordering::SeqCst),
        t.done.pg_restarts,
        t.conductors.exits.len(),
        t.conductors.exits,
        t.conductors.started.len(),
        takeovers,
        most,
        again
    )
}
