//! A durable run's hold on its lease, and the keeper thread that renews the leases of this
//! process's runs while their steps run (a long step does not checkpoint, and a sync step may
//! block the thread that drives its run).
//!
//! Each checkpoint of a run renews its lease in the same write (no extra commit), so the keeper
//! renews only a run that has not checkpointed for a renewal interval. The lease is released by
//! the run's last checkpoint (its final state), or — when the run was dropped, or stopped on a
//! store error — by the keeper, once the run and every step it left running on the worker pool
//! have let go of their [`Hold`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::store::{
    abandon, forget, unix_millis, AnyStore, Checkpoint, Fence, LeaseUpdate, StoreError,
};

/// How long a run's lease lasts, and how often it is renewed while nothing else renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTimes {
    pub(crate) duration: Duration,
    pub(crate) renew_every: Duration,
}

impl Default for LeaseTimes {
    fn default() -> Self {
        LeaseTimes {
            duration: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
        }
    }
}

impl LeaseTimes {
    /// `duration` (at least 10 ms) renewed every `renew_every`, which is kept between 1 ms and
    /// half the duration, so a lease is renewed at least once before it runs out.
    pub(crate) fn new(duration: Duration, renew_every: Duration) -> Self {
        let duration = duration.max(Duration::from_millis(10));
        LeaseTimes {
            duration,
            renew_every: renew_every.clamp(Duration::from_millis(1), duration / 2),
        }
    }

    /// The end of a lease taken or renewed now (Unix milliseconds).
    pub(crate) fn until(&self) -> u64 {
        unix_millis(SystemTime::now() + self.duration)
    }
}

/// What the run, the keeper and the run's steps on the pool share about one lease.
pub(crate) struct Held {
    store: AnyStore,
    flow_id: Arc<str>,
    fence: Fence,
    times: LeaseTimes,
    /// When the keeper renews next, unless a checkpoint renews first.
    next_renewal: Mutex<Instant>,
    /// A renewal or checkpoint found the run taken by another owner.
    lost: AtomicBool,
    /// The run's last checkpoint released the lease.
    released: AtomicBool,
    /// The run is in the store (a new run is recorded by its first checkpoint): until then
    /// there is nothing for the keeper to renew.
    recorded: AtomicBool,
}

impl Held {
    pub(crate) fn fence(&self) -> &Fence {
        &self.fence
    }

    pub(crate) fn times(&self) -> LeaseTimes {
        self.times
    }

    /// A checkpoint that renewed the lease succeeded.
    pub(crate) fn renewed(&self) {
        *self
            .next_renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now() + self.times.renew_every;
    }

    pub(crate) fn set_released(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// The new run's first checkpoint recorded it.
    pub(crate) fn set_recorded(&self) {
        self.recorded.store(true, Ordering::Release);
    }

    pub(crate) fn set_lost(&self) {
        self.lost.store(true, Ordering::Release);
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// The error of a write after the lease was found lost.
    pub(crate) fn lost_error(&self) -> StoreError {
        StoreError::LostLease {
            flow_id: self.flow_id.to_string(),
            epoch: self.fence.epoch,
            holder: None,
        }
    }
}

/// A run's hold on its lease: while one is alive (the run's journal holds one, each step the run
/// left on the worker pool another), the keeper renews the lease; the last one dropped has the
/// keeper release it, unless the run's last checkpoint did.
pub(crate) struct Hold(Arc<Held>);

impl Hold {
    /// Holds the lease `fence` of run `flow_id` in `store`, taken just now for `times`;
    /// `recorded` false for a new run that its first checkpoint records.
    pub(crate) fn new(
        store: AnyStore,
        flow_id: &str,
        fence: Fence,
        times: LeaseTimes,
        recorded: bool,
    ) -> Arc<Hold> {
        let held = Arc::new(Held {
            store,
            flow_id: Arc::from(flow_id),
            fence,
            times,
            next_renewal: Mutex::new(Instant::now() + times.renew_every),
            lost: AtomicBool::new(false),
            released: AtomicBool::new(false),
            recorded: AtomicBool::new(recorded),
        });
        keeper().add(held.clone());
        Arc::new(Hold(held))
    }

    pub(crate) fn held(&self) -> &Held {
        &self.0
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        keeper().remove(&self.0);
    }
}

/// The process's one lease keeper.
struct Keeper {
    state: Mutex<KeeperState>,
    wake: Condvar,
}

#[derive(Default)]
struct KeeperState {
    /// The leases to renew.
    held: Vec<Arc<Held>>,
    /// The leases to release (their runs let go without releasing them).
    release: Vec<Arc<Held>>,
    /// What the keeper thread does now: a lease added or let go wakes it only when it would
    /// otherwise not see it in time.
    waiting: Waiting,
}

#[derive(Default, Clone, Copy)]
enum Waiting {
    /// Renewing or releasing; it looks at the leases again before it waits.
    #[default]
    Busy,
    /// Asleep until the next renewal due.
    Until(Instant),
    /// Asleep: nothing to renew.
    Forever,
}

fn keeper() -> &'static Keeper {
    static KEEPER: OnceLock<&'static Keeper> = OnceLock::new();
    KEEPER.get_or_init(|| {
        let keeper: &'static Keeper = Box::leak(Box::new(Keeper {
            state: Mutex::new(KeeperState::default()),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("taskflow-lease-keeper".into())
            .spawn(move || keeper.run());
        if let Err(error) = spawned {
            // Runs still work; their leases are renewed only by their checkpoints.
            tracing::warn!(%error, "taskflow: cannot start the lease keeper thread");
        }
        keeper
    })
}

impl Keeper {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeeperState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, held: Arc<Held>) {
        let mut state = self.lock();
        let due = *held
            .next_renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.held.push(held);
        // Most runs end before their first renewal: the keeper is not woken for them.
        let wake = match state.waiting {
            Waiting::Busy => false,
            Waiting::Until(at) => due < at,
            Waiting::Forever => true,
        };
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    fn remove(&self, held: &Arc<Held>) {
        let mut state = self.lock();
        state.held.retain(|h| !Arc::ptr_eq(h, held));
        if !held.released.load(Ordering::Acquire) && !held.is_lost() {
            // This process sees at once that nobody holds the run any more; other processes
            // see it when the keeper has released the lease (or when it runs out).
            abandon(&held.fence.owner);
            state.release.push(held.clone());
            drop(state);
            self.wake.notify_one();
        }
    }

    fn run(&self) {
        // For stores with asynchronous I/O: their renewals are awaited here.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
        let mut state = self.lock();
        loop {
            let release = std::mem::take(&mut state.release);
            let now = Instant::now();
            let due: Vec<Arc<Held>> = state
                .held
                .iter()
                .filter(|h| {
                    !h.is_lost()
                        && !h.released.load(Ordering::Acquire)
                        && h.recorded.load(Ordering::Acquire)
                        && *h
                            .next_renewal
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            <= now
                })
                .cloned()
                .collect();
            if release.is_empty() && due.is_empty() {
                let next = state
                    .held
                    .iter()
                    .map(|h| {
                        *h.next_renewal
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                    })
                    .min();
                state.waiting = next.map_or(Waiting::Forever, Waiting::Until);
                state = match next {
                    Some(at) => {
                        let wait = at.saturating_duration_since(now);
                        self.wake
                            .wait_timeout(state, wait)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                    None => self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                };
                state.waiting = Waiting::Busy;
                continue;
            }
            drop(state);
            for held in release {
                let cp = Checkpoint {
                    fence: Some(held.fence.clone()),
                    lease: LeaseUpdate::Release,
                    ..Checkpoint::default()
                };
                match write(&held, &cp, runtime.as_ref()) {
                    Ok(()) | Err(StoreError::LostLease { .. } | StoreError::NotFound { .. }) => {
                        forget(&held.fence.owner);
                    }
                    Err(error) => tracing::warn!(flow_id = %held.flow_id, %error,
                        "taskflow: could not release a run's lease; it runs out by itself"),
                }
            }
            for held in due {
                let cp = Checkpoint {
                    fence: Some(held.fence.clone()),
                    lease: LeaseUpdate::Renew {
                        until: held.times.until(),
                    },
                    ..Checkpoint::default()
                };
                match write(&held, &cp, runtime.as_ref()) {
                    Ok(()) => held.renewed(),
                    Err(StoreError::LostLease { .. } | StoreError::NotFound { .. }) => {
                        held.set_lost();
                    }
                    Err(error) => {
                        // Tried again soon; the lease still holds for a while.
                        tracing::warn!(flow_id = %held.flow_id, %error,
                            "taskflow: could not renew a run's lease");
                        *held
                            .next_renewal
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) =
                            Instant::now() + held.times.renew_every / 4;
                    }
                }
            }
            state = self.lock();
        }
    }
}

/// One write of the keeper, on its own thread.
fn write(
    held: &Held,
    cp: &Checkpoint,
    runtime: Option<&tokio::runtime::Runtime>,
) -> Result<(), StoreError> {
    match &held.store {
        AnyStore::Blocking(store) => store.checkpoint(&held.flow_id, cp),
        AnyStore::Async(store) => match runtime {
            Some(runtime) => runtime.block_on(store.checkpoint(&held.flow_id, cp)),
            None => Err(StoreError::Backend {
                store: "lease keeper".into(),
                source: "no Tokio runtime to renew leases on".into(),
            }),
        },
    }
}
