//! A store in memory: for tests and for runs that need no durability.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{
    apply_checkpoint_indexed, atom_index, check_fence, created_with, lease, sort_flows,
    unix_millis, validate_checkpoint, validate_flow_id, Checkpoint, FlowRecord, Owner, Store,
    StoreError, StoredFlow,
};

/// A [`Store`] in memory. Everything is lost when it is dropped.
///
/// A checkpoint is checked first, then applied under one lock, so it is all or nothing and
/// readers never see half of it.
///
/// ```
/// use taskflow::store::{FlowRecord, MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let flow = FlowRecord::new("book", "BootVm", "fp", serde_json::json!({}));
/// store.create_flow(&flow).unwrap();
/// assert_eq!(store.list_flows().unwrap(), [flow]);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    flows: Mutex<HashMap<String, Entry>>,
}

/// A run and where each of its steps is in it.
#[derive(Debug)]
struct Entry {
    stored: StoredFlow,
    index: HashMap<String, usize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn flows(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Nothing panics while the lock is held, and a checkpoint is applied only after it was
        // checked, so a poisoned map is still consistent.
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn create_flow(&self, flow: &FlowRecord) -> Result<(), StoreError> {
        validate_flow_id(&flow.id)?;
        let mut flows = self.flows();
        if flows.contains_key(&flow.id) {
            return Err(StoreError::AlreadyExists {
                flow_id: flow.id.clone(),
            });
        }
        let stored = StoredFlow {
            flow: flow.clone(),
            atoms: Vec::new(),
            retries: Vec::new(),
        };
        let index = atom_index(&stored);
        flows.insert(flow.id.clone(), Entry { stored, index });
        Ok(())
    }

    fn checkpoint(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        validate_checkpoint(checkpoint)?;
        let mut flows = self.flows();
        let entry = flows.get_mut(flow_id).ok_or_else(|| StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        })?;
        let now = unix_millis(SystemTime::now());
        check_fence(&entry.stored.flow, checkpoint, now)?;
        apply_checkpoint_indexed(&mut entry.stored, &mut entry.index, checkpoint, now);
        Ok(())
    }

    fn create_with(&self, flow: &FlowRecord, first: &Checkpoint) -> Result<(), StoreError> {
        let stored = created_with(flow, first)?;
        let mut flows = self.flows();
        if flows.contains_key(&flow.id) {
            return Err(StoreError::AlreadyExists {
                flow_id: flow.id.clone(),
            });
        }
        let index = atom_index(&stored);
        flows.insert(flow.id.clone(), Entry { stored, index });
        Ok(())
    }

    fn load_flow(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError> {
        Ok(self.flows().get(flow_id).map(|e| e.stored.clone()))
    }

    fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let mut flows: Vec<FlowRecord> = self
            .flows()
            .values()
            .map(|e| e.stored.flow.clone())
            .collect();
        sort_flows(&mut flows);
        Ok(flows)
    }

    fn delete_flow(&self, flow_id: &str) -> Result<(), StoreError> {
        match self.flows().remove(flow_id) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound {
                flow_id: flow_id.to_owned(),
            }),
        }
    }

    fn acquire(&self, flow_id: &str, owner: &Owner, until: u64) -> Result<StoredFlow, StoreError> {
        let mut flows = self.flows();
        let entry = flows.get_mut(flow_id).ok_or_else(|| StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        })?;
        lease::take(
            &mut entry.stored.flow,
            owner,
            until,
            unix_millis(SystemTime::now()),
        )?;
        Ok(entry.stored.clone())
    }
}
