//! Run ownership: who runs a stored run, until when, and the epoch that fences a writer that lost
//! it.
//!
//! A run is held by one [`Owner`] at a time under a [`Lease`]. Starting a run records it with
//! the starter's lease ([`Store::create_flow`](super::Store::create_flow) of a [`FlowRecord`]
//! whose `lease` is set); resuming one takes it with [`Store::acquire`](super::Store::acquire),
//! which refuses with [`StoreError::RunBusy`] while another owner's lease is live and otherwise
//! raises the run's epoch. Every checkpoint of the holder carries its [`Fence`] (owner and
//! epoch), and the store applies it only if both are still the run's, in the same transaction;
//! otherwise it is [`StoreError::LostLease`] and nothing is written. A checkpoint also renews
//! the lease or releases it ([`LeaseUpdate`]).
//!
//! A lease is live until its `until` time (Unix milliseconds, by the clocks of the processes
//! that share the store) — or until its owner is known dead: an owner on this host whose process
//! is gone (see [`Owner::is_known_dead`]) holds nothing, whatever its lease says.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};

use super::{FlowRecord, StoreError};

/// A process holding a run: a fresh id for each time a run is taken, and where the process is
/// (for people, and for the local liveness check).
///
/// ```
/// use taskflow::store::Owner;
///
/// let me = Owner::current();
/// assert_eq!(me.pid, std::process::id());
/// assert_ne!(me.id, Owner::current().id); // one id per taking of a run
/// assert!(!me.is_known_dead());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Unique to one taking of one run (a fresh id each time), so two runs of one process, or a
    /// dropped run and its resume, are different owners.
    pub id: String,
    /// The host name of the owner's machine.
    pub host: String,
    /// The owner's process id.
    pub pid: u32,
    /// What tells this process apart from any other with the same pid, on Linux: the kernel's
    /// boot id, the pid namespace and the process's start time (`<boot>/<namespace>/<start>`);
    /// empty where it is not known (then only the lease's expiry frees the run).
    #[serde(default)]
    pub process: String,
}

/// This process's identity on its host: host name and [`Owner::process`] without the pid.
struct Here {
    host: String,
    boot: String,
    namespace: String,
    started: String,
}

fn here() -> &'static Here {
    static HERE: OnceLock<Here> = OnceLock::new();
    HERE.get_or_init(|| {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let host = match read("/proc/sys/kernel/hostname") {
            h if h.is_empty() => std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
            h => h,
        };
        let namespace = std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Here {
            host,
            boot: read("/proc/sys/kernel/random/boot_id"),
            namespace,
            started: proc_start(std::process::id())
                .map(|(start, _)| start)
                .unwrap_or_default(),
        }
    })
}

/// The start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot) and the state letter
/// of process `pid`, or `None` when there is no such process.
fn proc_start(pid: u32) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 come before the start time.
    let start = fields.nth(18)?;
    Some((start.to_owned(), state))
}

impl Owner {
    /// A new owner in this process: a fresh id, this host's name and this process's id.
    pub fn current() -> Owner {
        let here = here();
        let process = if here.boot.is_empty() || here.started.is_empty() {
            String::new()
        } else {
            format!("{}/{}/{}", here.boot, here.namespace, here.started)
        };
        Owner {
            id: super::new_flow_id(),
            host: here.host.clone(),
            pid: std::process::id(),
            process,
        }
    }

    /// Whether this owner's process is known to be gone: it ran on this host (same host name,
    /// same boot, same pid namespace) and no process with its pid and its start time exists now
    /// (none with that pid, a zombie, or a newer process that reused the pid). An owner on
    /// another host, or one whose process cannot be checked, is never known dead: its lease
    /// runs out by time instead.
    ///
    /// The start time makes pid reuse harmless: a new process with the dead owner's pid started
    /// later, so it does not make the owner look alive.
    ///
    /// ```
    /// use taskflow::store::Owner;
    ///
    /// let mut gone = Owner::current();
    /// // This process, started at another time: the pid was reused.
    /// let (start, rest) = gone.process.rsplit_once('/').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
    /// gone.process = format!("{start}/{}", rest.parse::<u64>().unwrap() + 1);
    /// assert!(gone.is_known_dead());
    ///
    /// let mut elsewhere = Owner::current();
    /// elsewhere.host = "another-machine".into();
    /// elsewhere.pid = u32::MAX;
    /// assert!(!elsewhere.is_known_dead());
    /// ```
    pub fn is_known_dead(&self) -> bool {
        let here = here();
        if self.pid == std::process::id() && self.host == here.host && self.is_this_process() {
            // An owner of this very process is dead once its run let go of the run.
            return abandoned().contains(&self.id);
        }
        let mut parts = self.process.rsplitn(2, '/');
        let (Some(started), Some(machine)) = (parts.next(), parts.next()) else {
            return false;
        };
        if self.host != here.host
            || here.boot.is_empty()
            || machine != format!("{}/{}", here.boot, here.namespace)
        {
            return false;
        }
        match proc_start(self.pid) {
            None => true,
            Some((_, 'Z' | 'X')) => true,
            Some((start, _)) => start != started,
        }
    }
}

impl Owner {
    fn is_this_process(&self) -> bool {
        let here = here();
        !here.boot.is_empty()
            && self.process == format!("{}/{}/{}", here.boot, here.namespace, here.started)
    }
}

/// The owners of this process whose runs let go of their runs (dropped, or stopped by a store
/// error) while their leases may still be recorded: held until the lease is released.
struct Abandoned {
    ids: Mutex<HashSet<String>>,
}

impl Abandoned {
    /// At most this many are remembered (a store that fails every release must not grow it
    /// forever); beyond, an owner's lease runs out by time.
    const MAX: usize = 4096;

    fn contains(&self, id: &str) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }
}

fn abandoned() -> &'static Abandoned {
    static ABANDONED: OnceLock<Abandoned> = OnceLock::new();
    ABANDONED.get_or_init(|| Abandoned {
        ids: Mutex::new(HashSet::new()),
    })
}

/// The run of owner `id` (of this process) let go of it: its lease, wherever it is recorded,
/// holds nothing any more.
pub(crate) fn abandon(id: &str) {
    let mut ids = abandoned()
        .ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if ids.len() < Abandoned::MAX {
        ids.insert(id.to_owned());
    }
}

/// The lease of owner `id` was released (or taken over): nothing to remember.
pub(crate) fn forget(id: &str) {
    abandoned()
        .ids
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(id);
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (host {}, pid {})", self.id, self.host, self.pid)
    }
}

/// A run's lease: who holds it, and until when (Unix milliseconds).
///
/// ```
/// use taskflow::store::{Lease, Owner};
///
/// let lease = Lease { owner: Owner::current(), until: u64::MAX };
/// assert!(lease.is_live(0));
/// assert!(!Lease { until: 10, ..lease }.is_live(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds the run.
    pub owner: Owner,
    /// When the lease runs out unless renewed (Unix milliseconds).
    pub until: u64,
}

impl Lease {
    /// Whether the lease still holds at `now` (Unix milliseconds): not run out, and its owner
    /// not [known dead](Owner::is_known_dead).
    pub fn is_live(&self, now: u64) -> bool {
        self.until > now && !self.owner.is_known_dead()
    }
}

/// What a writer proves it holds a run with: its owner id and the epoch it took the run at.
///
/// ```
/// use taskflow::store::{Fence, FlowRecord, Lease, Owner};
///
/// let owner = Owner::current();
/// let mut flow = FlowRecord::new("book", "Flow", "fp", serde_json::json!(null));
/// let fence = flow.lease_to(&owner, u64::MAX);
/// assert_eq!(fence, Fence { owner: owner.id.clone(), epoch: 1 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fence {
    /// The [`Owner::id`] of the holder.
    pub owner: String,
    /// The run's epoch when the holder took it.
    pub epoch: u64,
}

/// What a checkpoint does to its writer's lease.
///
/// ```
/// use taskflow::store::{Checkpoint, LeaseUpdate};
/// assert_eq!(Checkpoint::default().lease, LeaseUpdate::Keep);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LeaseUpdate {
    /// Leaves it as it is.
    #[default]
    Keep,
    /// Extends it to `until` (Unix milliseconds).
    Renew {
        /// The new end of the lease.
        until: u64,
    },
    /// Gives the run up: it has no owner any more.
    Release,
}

impl FlowRecord {
    /// Gives this (new) run to `owner` until `until`, raising its epoch: what a run's starter
    /// records with [`Store::create_flow`](super::Store::create_flow). Returns the fence the
    /// owner writes with.
    pub fn lease_to(&mut self, owner: &Owner, until: u64) -> Fence {
        self.epoch += 1;
        self.lease = Some(Lease {
            owner: owner.clone(),
            until,
        });
        Fence {
            owner: owner.id.clone(),
            epoch: self.epoch,
        }
    }
}

/// [`Store::acquire`](super::Store::acquire) on a run held in memory: refuses while another
/// owner's lease is live, else takes the run for `owner`. False, with nothing changed, for a run
/// in a final state: there is nothing left to own (and a taker killed before letting go would
/// leave a finished run leased).
pub(crate) fn take(
    flow: &mut FlowRecord,
    owner: &Owner,
    until: u64,
    now: u64,
) -> Result<bool, StoreError> {
    if flow.state.is_final() {
        return Ok(false);
    }
    if let Some(lease) = &flow.lease {
        if lease.owner.id != owner.id && lease.is_live(now) {
            return Err(StoreError::RunBusy {
                flow_id: flow.id.clone(),
                owner: lease.owner.clone(),
                until: lease.until,
            });
        }
    }
    flow.lease_to(owner, until);
    Ok(true)
}

/// Whether a checkpoint with `fence` may be applied to the run whose epoch and lease are these:
/// the fence must be the holder's (a fenced writer); an unfenced checkpoint (a tool's, a test's)
/// is refused while someone holds a live lease.
pub(crate) fn check(
    flow_id: &str,
    epoch: u64,
    lease: Option<&Lease>,
    fence: Option<&Fence>,
    now: u64,
) -> Result<(), StoreError> {
    match (fence, lease) {
        (Some(f), Some(l)) if f.epoch == epoch && f.owner == l.owner.id => Ok(()),
        (Some(f), held) => Err(StoreError::LostLease {
            flow_id: flow_id.to_owned(),
            epoch: f.epoch,
            holder: held.map(|l| l.owner.clone()),
        }),
        (None, Some(l)) if l.is_live(now) => Err(StoreError::RunBusy {
            flow_id: flow_id.to_owned(),
            owner: l.owner.clone(),
            until: l.until,
        }),
        (None, _) => Ok(()),
    }
}

/// Applies a checked checkpoint's lease update.
pub(crate) fn update(lease: &mut Option<Lease>, change: LeaseUpdate) {
    match change {
        LeaseUpdate::Keep => {}
        LeaseUpdate::Renew { until } => {
            if let Some(lease) = lease {
                lease.until = until;
            }
        }
        LeaseUpdate::Release => *lease = None,
    }
}

/// `millis` (Unix milliseconds) as an ISO 8601 UTC time, like `2026-12-02T09:10:11.123Z`.
///
/// ```
/// assert_eq!(taskflow::store::utc(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(taskflow::store::utc(1_796_216_411_123), "2026-12-02T13:00:11.123Z");
/// ```
pub fn utc(millis: u64) -> String {
    let secs = millis / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        millis % 1000
    )
}
