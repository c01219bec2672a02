//! The write-ahead journal of a durable run: what the run has recorded, and what it has yet to
//! commit to its store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde_json::Value;

use crate::failure::Failure;
use crate::graph::FlowGraph;
use crate::retry::History;
use crate::state::{FlowState, StepState};
use crate::store::{
    unix_millis, AnyStore, AtomRecord, Checkpoint, FailureRecord, FlowRecord, LeaseUpdate,
    RetryRecord, StoreError, StoredFlow,
};

use super::lease::Hold;

/// The write-ahead journal of one durable run, shared by its flow and sub-flows.
pub(crate) struct Journal {
    store: AnyStore,
    flow_id: Arc<str>,
    /// Whether the store's calls run on the driving thread (see [`AnyStore`]).
    inline: bool,
    /// The run's lease: every checkpoint is fenced with it, and renews it (or releases it, with
    /// the run's final state).
    hold: Arc<Hold>,
    state: Mutex<JournalState>,
}

#[derive(Default)]
struct JournalState {
    /// The latest record of each step, by path, and whether it changed since the last commit.
    current: HashMap<String, (AtomRecord, bool)>,
    /// The steps that changed since the last commit, in the order they first did.
    dirty: Vec<String>,
    retries: Vec<RetryRecord>,
    flow_state: Option<FlowState>,
    /// The run reached its final state (or SUSPENDED): the next checkpoint releases the lease.
    release: bool,
    /// The first checkpoint that failed: the run stops, and nothing more is written.
    error: Option<StoreError>,
    /// A new run not recorded yet: it is, with the first checkpoint (one transaction where the
    /// store can, see [`Store::create_with`](crate::store::Store::create_with)).
    create: Option<FlowRecord>,
}

impl JournalState {
    /// The current record of step `path`, marked as changed.
    fn touch(&mut self, path: String) -> &mut AtomRecord {
        let JournalState { current, dirty, .. } = self;
        let (atom, changed) = current
            .entry(path)
            .or_insert_with_key(|name| (AtomRecord::new(name.clone()), false));
        if !*changed {
            *changed = true;
            dirty.push(atom.name.clone());
        }
        atom
    }
}

impl Journal {
    /// The journal of run `flow_id` in `store`: a new run, or one loaded as `stored`.
    pub(crate) fn new(
        store: AnyStore,
        flow_id: &str,
        stored: Option<&StoredFlow>,
        inline: bool,
        hold: Arc<Hold>,
    ) -> Self {
        let current = stored
            .map(|s| {
                s.atoms
                    .iter()
                    .map(|a| (a.name.clone(), (a.clone(), false)))
                    .collect()
            })
            .unwrap_or_default();
        Journal {
            store,
            flow_id: Arc::from(flow_id),
            inline,
            hold,
            state: Mutex::new(JournalState {
                current,
                ..JournalState::default()
            }),
        }
    }

    /// The journal of the new run `record`, which its first checkpoint records.
    pub(crate) fn starting(
        store: AnyStore,
        record: FlowRecord,
        inline: bool,
        hold: Arc<Hold>,
    ) -> Self {
        let journal = Journal::new(store, &record.id, None, inline, hold);
        journal.lock().create = Some(record);
        journal
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a step's new state (written with the next checkpoint).
    pub(crate) fn step(
        &self,
        path: String,
        state: StepState,
        attempt: u32,
        failure: Option<&Failure>,
    ) {
        let now = unix_millis(SystemTime::now());
        let mut j = self.lock();
        let atom = j.touch(path);
        // A start of the attempt that was RUNNING (its run was interrupted) is a run again.
        if state == StepState::Running {
            let again = atom.state == StepState::Running && atom.attempt == attempt;
            atom.runs = if again {
                atom.runs.saturating_add(1)
            } else {
                1
            };
        } else if state == StepState::Pending {
            atom.runs = 0;
        }
        atom.state = state;
        atom.attempt = attempt;
        match state {
            // A new attempt (or a step set up to run again) starts from nothing.
            StepState::Pending | StepState::Running => {
                atom.result = None;
                atom.failure = None;
                atom.revert_failure = None;
                atom.progress = 0.0;
                atom.started_at = (state == StepState::Running).then_some(now);
                atom.finished_at = None;
            }
            StepState::Success => {
                atom.progress = 1.0;
                atom.finished_at = Some(now);
            }
            StepState::Failure => {
                atom.failure = failure.map(FailureRecord::from);
                atom.finished_at = Some(now);
            }
            StepState::RevertFailure => atom.revert_failure = failure.map(FailureRecord::from),
            StepState::Reverting
            | StepState::Reverted
            | StepState::Ignore
            | StepState::Retrying => {}
        }
    }

    /// Records step `path` as held for a person (see [`super::takeover`]): RUNNING, with a
    /// failure that says why. What its undo failed with, if it did, stays on it.
    pub(crate) fn held(&self, path: &str, reason: &str) {
        let mut j = self.lock();
        let atom = j.touch(path.to_owned());
        atom.state = StepState::Running;
        atom.result = None;
        atom.failure = Some(FailureRecord {
            step: path.to_owned(),
            message: reason.to_owned(),
            is_panic: false,
        });
    }

    /// Records a step's result (its outputs as JSON), with its SUCCESS.
    pub(crate) fn result(&self, path: &str, json: Value) {
        self.lock().touch(path.to_owned()).result = Some(json);
    }

    /// Records a step's progress (written with the next checkpoint).
    pub(crate) fn progress(&self, path: String, progress: f32) {
        self.lock().touch(path).progress = progress.clamp(0.0, 1.0);
    }

    /// Records a retry scope's attempt and history (of the flow at `flow`, `""` for the root), and
    /// the failure of its controller if it failed.
    pub(crate) fn retry(
        &self,
        flow: &str,
        scope: usize,
        attempt: u32,
        history: &History,
        failure: Option<&Failure>,
    ) {
        let record = RetryRecord {
            scope,
            flow: flow.to_owned(),
            attempt,
            history: history
                .each_attempt()
                .iter()
                .map(|failures| failures.iter().map(FailureRecord::from).collect())
                .collect(),
            failure: failure.map(FailureRecord::from),
        };
        self.lock().retries.push(record);
    }

    /// Records every step of a new run (sub-flows' steps too, recursively) PENDING, as TaskFlow
    /// records every atom when a flow detail is created: a stored run lists all its steps from
    /// its first checkpoint on.
    pub(crate) fn pending_run(&self, graph: &FlowGraph) {
        for step in graph.steps() {
            self.step(step.name().to_owned(), StepState::Pending, 1, None);
            if let Some(sub) = step.subflow() {
                self.pending_flow(step.name(), sub);
            }
        }
    }

    /// Records every step of the sub-flow at `flow` (a step path, like `Sub`), recursively, as
    /// PENDING at attempt 1, and its retry scopes at attempt 1.
    pub(crate) fn pending_flow(&self, flow: &str, graph: &FlowGraph) {
        for scope in 0..graph.scopes().len() {
            self.retry(flow, scope, 1, &History::default(), None);
        }
        for step in graph.steps() {
            let path = format!("{flow}/{}", step.name());
            self.step(path.clone(), StepState::Pending, 1, None);
            if let Some(sub) = step.subflow() {
                self.pending_flow(&path, sub);
            }
        }
    }

    pub(crate) fn flow_state(&self, state: FlowState) {
        let mut j = self.lock();
        j.flow_state = Some(state);
        j.release |= state.is_final() || state == FlowState::Suspended;
    }

    /// The run's store and id.
    pub(crate) fn store(&self) -> (&AnyStore, &str) {
        (&self.store, &self.flow_id)
    }

    /// Whether the store's calls run on the driving thread.
    pub(crate) fn inline(&self) -> bool {
        self.inline
    }

    /// The run's hold on its lease (a step left running on the worker pool keeps a clone).
    pub(crate) fn hold(&self) -> &Arc<Hold> {
        &self.hold
    }

    /// Writes what was recorded since the last checkpoint, all or nothing. False when this or an
    /// earlier checkpoint failed: the run must stop. The driver awaits it before it starts what
    /// the checkpoint announces (write-ahead); the journal is not locked while the store works.
    pub(crate) async fn commit(&self) -> bool {
        let held = self.hold.held();
        if held.is_lost() {
            // The keeper found the run taken by another owner: nothing more is written.
            self.lock().error.get_or_insert_with(|| held.lost_error());
            return false;
        }
        let Some((create, checkpoint)) = self.take_checkpoint() else {
            return self.lock().error.is_none();
        };
        let releases = checkpoint.lease == LeaseUpdate::Release;
        let creates = create.is_some();
        let written = match create {
            Some(record) => {
                self.store
                    .create_with(record, checkpoint, self.inline)
                    .await
            }
            None => {
                self.store
                    .checkpoint(&self.flow_id, checkpoint, self.inline)
                    .await
            }
        };
        if creates && written.is_ok() {
            held.set_recorded();
        }
        match written {
            Ok(()) if releases => {
                held.set_released();
                true
            }
            Ok(()) => {
                held.renewed();
                true
            }
            Err(e) => {
                if matches!(e, StoreError::LostLease { .. }) {
                    held.set_lost();
                }
                if matches!(e, StoreError::AlreadyExists { .. }) {
                    // Another run has the id: this one never held a lease to let go.
                    held.set_released();
                }
                self.lock().error.get_or_insert(e);
                false
            }
        }
    }

    /// What was recorded since the last checkpoint, as the next checkpoint: `None` when nothing
    /// was, or when a checkpoint failed (nothing more is written).
    fn take_checkpoint(&self) -> Option<(Option<FlowRecord>, Checkpoint)> {
        let mut j = self.lock();
        if j.error.is_some()
            || (j.dirty.is_empty()
                && j.retries.is_empty()
                && j.flow_state.is_none()
                && j.create.is_none())
        {
            return None;
        }
        let dirty = std::mem::take(&mut j.dirty);
        let atoms = dirty
            .iter()
            .filter_map(|name| {
                let (atom, changed) = j.current.get_mut(name)?;
                *changed = false;
                Some(atom.clone())
            })
            .collect();
        let held = self.hold.held();
        let lease = if std::mem::take(&mut j.release) {
            LeaseUpdate::Release
        } else {
            LeaseUpdate::Renew {
                until: held.times().until(),
            }
        };
        let checkpoint = Checkpoint {
            flow_state: j.flow_state.take(),
            atoms,
            retries: std::mem::take(&mut j.retries),
            fence: Some(held.fence().clone()),
            lease,
        };
        Some((j.create.take(), checkpoint))
    }

    pub(crate) fn failed(&self) -> bool {
        self.lock().error.is_some()
    }

    pub(crate) fn take_error(&self) -> Option<StoreError> {
        self.lock().error.take()
    }
}
