//! Fan-out: a `map` step runs its task once per element — in order on the serial engine,
//! stopping at the first failure; all at once on the parallel engine (sync items on its workers),
//! keeping the finished ones so each can be reverted on its own.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::failure::Failure;
use crate::runtime::{Mode, RunContext};
use crate::store::FailureRecord;

/// One item of a `map` step.
#[derive(Debug)]
pub enum MapItem<U> {
    /// Outcome: its output.
    Done(U),
    /// Failed (the first failure of the step is the step's failure).
    Failed(Failure),
    /// Never started: an earlier item failed first (serial engine).
    NotRun,
}

/// How a durable run records the items of a `map` step that failed, with its FAILURE (so that
/// the finished items are reverted after a crash too): `{"done": output}`, `{"failed": failure}`
/// or `null` for an item that never started.
#[derive(Serialize, Deserialize)]
enum Recorded<U> {
    #[serde(rename = "done")]
    Done(U),
    #[serde(rename = "failed")]
    Failed(FailureRecord),
}

impl<U: Serialize> Serialize for MapItem<U> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MapItem::Done(output) => Some(Recorded::Done(output)),
            MapItem::Failed(failure) => Some(Recorded::Failed(FailureRecord::from(failure))),
            MapItem::NotRun => None,
        }
        .serialize(s)
    }
}

impl<'de, U: Deserialize<'de>> Deserialize<'de> for MapItem<U> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<Recorded<U>>::deserialize(d)? {
            Some(Recorded::Done(output)) => MapItem::Done(output),
            Some(Recorded::Failed(record)) => MapItem::Failed(record.to_failure(&record.step)),
            None => MapItem::NotRun,
        })
    }
}

/// What a `map` step ends with: every output in input order, or what finished and why it failed.
pub type MapOutcome<U> = Result<Vec<U>, (Vec<MapItem<U>>, Failure)>;

/// Runs a sync task once per item (`run_item(i)` for item `i`): in order on the serial engine,
/// stopping at the first failure; on the worker pool on the parallel engine, where every item
/// starts and the finished ones are kept for revert.
pub async fn map_sync<U, F>(run: &RunContext, items: usize, run_item: F) -> MapOutcome<U>
where
    U: Send + 'static,
    F: Fn(usize) -> Result<U, Failure> + Send + Sync + 'static,
{
    let mut results: Vec<MapItem<U>> = (0..items).map(|_| MapItem::NotRun).collect();
    match run.mode() {
        Mode::Serial => {
            for (i, slot) in results.iter_mut().enumerate() {
                let result = run_item(i);
                let failed = result.is_err();
                *slot = into_item(result);
                if failed {
                    break;
                }
            }
        }
        Mode::Parallel { .. } => {
            let pool = run.pool().expect("the parallel engine has a pool");
            let run_item = Arc::new(run_item);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let jobs = (0..items)
                .map(|i| {
                    let run_item = run_item.clone();
                    run.pool_job(move || (i, run_item(i)), tx.clone())
                })
                .collect();
            drop(tx);
            pool.submit_all(jobs);
            while let Some((i, result)) = rx.recv().await {
                results[i] = into_item(result);
            }
        }
    }
    map_outcome(results)
}

/// Runs an async task once per item: in order on the serial engine, stopping at the first
/// failure; all at once on the parallel engine, keeping the finished ones for revert.
pub async fn map_async<U, F, Fut>(run: &RunContext, items: usize, run_item: F) -> MapOutcome<U>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<U, Failure>>,
{
    let mut results: Vec<MapItem<U>> = (0..items).map(|_| MapItem::NotRun).collect();
    match run.mode() {
        Mode::Serial => {
            for (i, slot) in results.iter_mut().enumerate() {
                let result = run_item(i).await;
                let failed = result.is_err();
                *slot = into_item(result);
                if failed {
                    break;
                }
            }
        }
        Mode::Parallel { .. } => {
            let mut running: futures_util::stream::FuturesUnordered<_> = (0..items)
                .map(|i| {
                    let f = run_item(i);
                    async move { (i, f.await) }
                })
                .collect();
            while let Some((i, result)) = futures_util::StreamExt::next(&mut running).await {
                results[i] = into_item(result);
            }
        }
    }
    map_outcome(results)
}

fn into_item<U>(result: Result<U, Failure>) -> MapItem<U> {
    match result {
        Ok(value) => MapItem::Done(value),
        Err(failure) => MapItem::Failed(failure),
    }
}

fn map_outcome<U>(results: Vec<MapItem<U>>) -> MapOutcome<U> {
    let failure = results.iter().find_map(|r| match r {
        MapItem::Failed(f) => Some(f.clone()),
        _ => None,
    });
    match failure {
        Some(failure) => Err((results, failure)),
        None => Ok(results
            .into_iter()
            .map(|r| match r {
                MapItem::Done(value) => value,
                _ => unreachable!("every item finished"),
            })
            .collect()),
    }
}
