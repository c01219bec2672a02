//! The PostgreSQL job board through its public API: posting (idempotent, inside the poster's
//! transaction, scheduled, by priority), claiming (skip-locked, fenced by the claim epoch,
//! only registered flow versions), heartbeats, take-overs, dead jobs and redrive, cancel, and a
//! claimed job run durably in the board's store. Needs the server at `DATABASE_URL`.
mod common;
use common::{database_url, PgStore};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use taskflow::prelude::*;
use taskflow::store::{
    AsyncStore, Claim, FlowKey, JobBoard, JobState, NewJob, Owner, Posted, StoreError,
};

#[task(provides = y)]
fn double(x: u32) -> u32 {
    x * 2
}

flow! {
    flow Double(x: u32) -> (y) { linear [ double ] }
}

#[task(provides = z)]
fn triple(x: u32) -> u32 {
    x * 3
}

flow! {
    flow Triple(x: u32) -> (z) { linear [ triple ] }
}

fn job(x: u32) -> NewJob {
    NewJob::of::<Double>(&DoubleInputs { x }).unwrap()
}

fn owner(name: &str) -> Owner {
    Owner {
        host: name.into(),
        pid: 1,
        ..Owner::current()
    }
}

fn keys() -> Vec<FlowKey> {
    vec![FlowKey::of::<Double>()]
}

const HOLD: Duration = Duration::from_secs(60);

/// A job of `Double` for `x`, posted and claimed by owner `a`.
async fn posted_and_claimed(board: &JobBoard, x: u32) -> (taskflow::store::JobId, Claim) {
    let id = board.post(&job(x)).await.unwrap().id();
    let claim = board
        .claim(&owner("a"), &keys(), 1, HOLD)
        .await
        .unwrap()
        .remove(0);
    (id, claim)
}

/// A board on a fresh schema, and a runtime to drive it.
fn board() -> (PgStore, JobBoard) {
    let pg = PgStore::new();
    let board = JobBoard::new(pg.store.clone());
    (pg, board)
}

#[test]
fn a_job_posted_twice_with_one_key_is_one_job() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let first = board
            .post(&job(1).idempotency_key("order-1"))
            .await
            .unwrap();
        let again = board
            .post(&job(2).idempotency_key("order-1"))
            .await
            .unwrap();
        assert!(matches!(first, Posted::New(_)));
        assert_eq!(again, Posted::Existing(first.id()));
        let other = board.post(&job(3)).await.unwrap();
        assert!(matches!(other, Posted::New(id) if id != first.id()));
        let jobs = board.jobs().await.unwrap();
        assert_eq!(jobs.len(), 2);
        let kept = board.job(first.id()).await.unwrap().unwrap();
        assert_eq!(kept.inputs["x"], 1, "the second post changed nothing");
        assert_eq!(kept.state, JobState::Posted);
    });
}

#[test]
fn a_job_posted_in_the_posters_transaction_exists_only_if_it_commits() {
    let (pg, board) = board();
    let schema = pg.schema.clone();
    pg.rt.block_on(async {
        let (mut client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE TABLE \"{schema}\".orders (id INT)"))
            .await
            .unwrap();

        let tx = client.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO \"{schema}\".orders VALUES (1)"), &[])
            .await
            .unwrap();
        let rolled_back = board.post_in(&tx, &job(1)).await.unwrap().id();
        tx.rollback().await.unwrap();
        assert_eq!(board.job(rolled_back).await.unwrap(), None);

        let tx = client.transaction().await.unwrap();
        tx.execute(&format!("INSERT INTO \"{schema}\".orders VALUES (2)"), &[])
            .await
            .unwrap();
        let committed = board.post_in(&tx, &job(2)).await.unwrap().id();
        // Not visible to the board before the poster commits...
        assert_eq!(board.job(committed).await.unwrap(), None);
        tx.commit().await.unwrap();
        // ...and there, with the poster's row, after.
        assert_eq!(
            board.job(committed).await.unwrap().unwrap().state,
            JobState::Posted
        );
        assert_eq!(board.jobs().await.unwrap().len(), 1);
    });
}

#[test]
fn claims_come_by_priority_then_run_at_and_only_for_known_flow_versions() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let low = board.post(&job(1)).await.unwrap().id();
        let high = board.post(&job(2).priority(5)).await.unwrap().id();
        let later = board
            .post(
                &job(3)
                    .priority(9)
                    .run_at(SystemTime::now() + Duration::from_secs(3600)),
            )
            .await
            .unwrap()
            .id();
        let other_flow = board
            .post(&NewJob::of::<Triple>(&TripleInputs { x: 1 }).unwrap())
            .await
            .unwrap()
            .id();
        let mut old_version = job(4);
        old_version.flow.fingerprint = "an older build".into();
        let old = board.post(&old_version).await.unwrap().id();

        let me = owner("a");
        let first = board.claim(&me, &keys(), 1, HOLD).await.unwrap();
        assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), [high]);
        let rest = board.claim(&me, &keys(), 10, HOLD).await.unwrap();
        assert_eq!(rest.iter().map(|c| c.id).collect::<Vec<_>>(), [low]);
        assert!(board
            .claim(&me, &keys(), 10, HOLD)
            .await
            .unwrap()
            .is_empty());

        for id in [later, other_flow, old] {
            assert_eq!(
                board.job(id).await.unwrap().unwrap().state,
                JobState::Posted
            );
        }
        let waiting = board.waiting_elsewhere(&keys()).await.unwrap();
        let names: Vec<(String, u64)> = waiting
            .iter()
            .map(|(k, n)| {
                (
                    format!(
                        "{}@{}",
                        k.name,
                        &k.fingerprint[..k.fingerprint.len().min(8)]
                    ),
                    *n,
                )
            })
            .collect();
        assert_eq!(waiting.len(), 2, "{names:?}");
        assert!(waiting.iter().any(|(k, n)| k.name == "Triple" && *n == 1));
        assert!(waiting
            .iter()
            .any(|(k, n)| k.fingerprint == "an older build" && *n == 1));

        let claimed = board.job(high).await.unwrap().unwrap();
        assert_eq!(claimed.state, JobState::Claimed);
        assert_eq!(
            (claimed.claims, claimed.epoch, claimed.takeovers),
            (1, 1, 0)
        );
        assert_eq!(claimed.owner.as_ref().map(|o| o.host.as_str()), Some("a"));
    });
}

#[test]
fn concurrent_claimers_never_get_the_same_job() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        for x in 0..120 {
            board.post(&job(x)).await.unwrap();
        }
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let board = board.clone();
                tokio::spawn(async move {
                    let me = owner(&format!("c{i}"));
                    let mut got = Vec::new();
                    loop {
                        let claims = board.claim(&me, &keys(), 4, HOLD).await.unwrap();
                        if claims.is_empty() {
                            return got;
                        }
                        got.extend(claims.into_iter().map(|c| c.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().copied().collect();
        assert_eq!(all.len(), 120, "every job claimed once");
        assert_eq!(unique.len(), 120, "no job claimed twice");
    });
}

#[test]
fn a_claim_that_ran_out_is_taken_over_and_the_old_claimer_can_write_nothing() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let id = board.post(&job(7)).await.unwrap().id();
        let stale = board
            .claim(&owner("a"), &keys(), 1, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        assert!(!stale.takeover);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = board
            .claim(&owner("b"), &keys(), 1, HOLD)
            .await
            .unwrap()
            .remove(0);
        assert_eq!((fresh.id, fresh.epoch, fresh.takeover), (id, 2, true));

        let before = board.job(id).await.unwrap().unwrap();
        for err in [
            board.heartbeat(&stale, HOLD).await.unwrap_err(),
            board.complete(&stale, FlowState::Success).await.unwrap_err(),
            board.release(&stale).await.unwrap_err(),
        ] {
            assert!(
                matches!(&err, StoreError::LostClaim { job, epoch: 1, state: Some(s), holder: Some(h) }
                    if *job == id.0 && s == "CLAIMED" && h.host == "b"),
                "{err}"
            );
        }
        let after = board.job(id).await.unwrap().unwrap();
        assert_eq!(after.claimed_until, before.claimed_until, "the stale heartbeat wrote nothing");
        assert_eq!(after.state, JobState::Claimed);
        assert_eq!(after.takeovers, 1);

        assert!(!board.heartbeat(&fresh, HOLD).await.unwrap());
        assert_eq!(
            board.complete(&fresh, FlowState::Success).await.unwrap(),
            JobState::Done
        );
        let done = board.job(id).await.unwrap().unwrap();
        assert_eq!((done.state, done.outcome), (JobState::Done, Some(FlowState::Success)));
        assert_eq!(done.owner, None);
        // Ended: the holder of the last claim cannot write either.
        assert!(matches!(
            board.heartbeat(&fresh, HOLD).await,
            Err(StoreError::LostClaim { state: Some(ref s), .. }) if s == "DONE"
        ));
    });
}

#[test]
fn the_runs_writes_through_a_stale_claims_view_change_nothing() {
    use taskflow::store::{Checkpoint, FlowRecord, LeaseUpdate};
    let (pg, board) = board();
    pg.rt.block_on(async {
        let id = board.post(&job(7)).await.unwrap().id();
        let stale = board
            .claim(&owner("a"), &keys(), 1, Duration::ZERO)
            .await
            .unwrap()
            .remove(0);
        let old = pg.store.for_claim(&stale);
        // While the claim holds, its view creates the run and writes to it under the run's
        // lease.
        let mut record = FlowRecord::new("jobs", "Double", "fp", serde_json::json!({"x": 7}));
        record.id = id.run_id();
        let a = owner("a");
        let fence = record.lease_to(&a, u64::MAX / 2);
        old.create_flow(&record).await.unwrap();
        let mut step = taskflow::store::AtomRecord::new("double");
        step.state = taskflow::StepState::Running;
        let cp = Checkpoint {
            atoms: vec![step.clone()],
            fence: Some(fence.clone()),
            lease: LeaseUpdate::Keep,
            ..Checkpoint::default()
        };
        old.checkpoint(&record.id, &cp).await.unwrap();
        // Taken over: another claim raises the epoch.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = board.claim(&owner("b"), &keys(), 1, HOLD).await.unwrap().remove(0);
        assert_eq!(fresh.epoch, 2);
        let before = pg.store.load_flow(&record.id).await.unwrap().unwrap();
        // The run's lease is still the old claimer's, but its claim is gone: nothing lands.
        step.state = taskflow::StepState::Success;
        step.result = Some(serde_json::json!(14));
        let late = Checkpoint {
            atoms: vec![step],
            flow_state: Some(FlowState::Success),
            fence: Some(fence),
            lease: LeaseUpdate::Release,
            ..Checkpoint::default()
        };
        let lost = |e: StoreError| {
            assert!(
                matches!(&e, StoreError::LostClaim { job, epoch: 1, state: Some(s), holder: Some(h) }
                    if *job == id.0 && s == "CLAIMED" && h.host == "b"),
                "{e}"
            );
        };
        lost(old.checkpoint(&record.id, &late).await.unwrap_err());
        lost(old.acquire(&record.id, &a, u64::MAX / 2).await.unwrap_err());
        let mut other = record.clone();
        other.id = "job-elsewhere".into();
        lost(old.create_flow(&other).await.unwrap_err());
        // Nor with its first checkpoint (one statement fenced by the claim).
        let first = Checkpoint {
            atoms: vec![taskflow::store::AtomRecord::new("double")],
            fence: Some(other.lease_to(&a, u64::MAX / 2)),
            lease: LeaseUpdate::Keep,
            ..Checkpoint::default()
        };
        lost(old.create_with(&other, &first).await.unwrap_err());
        let after = pg.store.load_flow(&record.id).await.unwrap().unwrap();
        assert_eq!(after.atoms, before.atoms, "nothing written");
        assert_eq!((after.flow.state, after.flow.epoch), (before.flow.state, before.flow.epoch));
        assert!(pg.store.load_flow("job-elsewhere").await.unwrap().is_none());
        // The late checkpoint would have ended the job: it is still the fresh claim's.
        let now = board.job(id).await.unwrap().unwrap();
        assert_eq!((now.state, now.epoch), (JobState::Claimed, 2));
        assert_eq!(old.completed(), None);
        // The fresh claim's view takes the run (once its lease runs out) and writes.
        let new = pg.store.for_claim(&fresh);
        let taken = new.acquire(&record.id, &owner("b"), u64::MAX / 2).await;
        assert!(
            matches!(taken, Err(StoreError::RunBusy { .. })),
            "the old lease is live: {taken:?}"
        );
        // An unfenced write through a claim's view is refused outright.
        let unfenced = Checkpoint::default();
        assert!(matches!(
            new.checkpoint(&record.id, &unfenced).await,
            Err(StoreError::Invalid { .. })
        ));
    });
}

#[test]
fn a_job_taken_over_too_often_is_dead_with_its_reason_until_redriven() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let mut new = job(1);
        new.max_takeovers = 2;
        let id = board.post(&new).await.unwrap().id();
        // The first claim and two take-overs are allowed; each claim runs out at once.
        for expected_epoch in 1..=3 {
            let claims = board
                .claim(&owner("a"), &keys(), 1, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(claims.len(), 1);
            assert_eq!(claims[0].epoch, expected_epoch);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The third take-over is refused: the job is dead, and nobody gets it.
        assert!(board
            .claim(&owner("a"), &keys(), 1, HOLD)
            .await
            .unwrap()
            .is_empty());
        let dead = board.job(id).await.unwrap().unwrap();
        assert_eq!(dead.state, JobState::Dead);
        let reason = dead.reason.unwrap();
        assert!(
            reason.contains("ran out 3 times") && reason.contains("allowed: 2"),
            "{reason}"
        );
        assert!(board
            .claim(&owner("a"), &keys(), 1, HOLD)
            .await
            .unwrap()
            .is_empty());

        assert!(board.redrive(id).await.unwrap());
        assert!(
            !board.redrive(id).await.unwrap(),
            "only a dead job is redriven"
        );
        let again = board.claim(&owner("a"), &keys(), 1, HOLD).await.unwrap();
        assert_eq!(again.len(), 1);
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.takeovers, job.reason),
            (JobState::Claimed, 0, None)
        );
    });
}

#[test]
fn a_cancelled_job_is_never_started_or_is_stopped_by_its_conductor() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let pending = board.post(&job(1)).await.unwrap().id();
        let running = board.post(&job(2)).await.unwrap().id();
        assert_eq!(board.cancel(pending).await.unwrap(), JobState::Cancelled);
        let claim: Claim = board
            .claim(&owner("a"), &keys(), 10, HOLD)
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(claim.id, running, "the cancelled job is not claimed");
        assert_eq!(board.cancel(running).await.unwrap(), JobState::Claimed);
        assert!(
            board.heartbeat(&claim, HOLD).await.unwrap(),
            "the conductor learns of it"
        );
        assert_eq!(
            board.complete(&claim, FlowState::Reverted).await.unwrap(),
            JobState::Cancelled
        );
        let job = board.job(running).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.outcome),
            (JobState::Cancelled, Some(FlowState::Reverted))
        );
        // An ended job stays as it is.
        assert_eq!(board.cancel(running).await.unwrap(), JobState::Cancelled);
    });
}

#[test]
fn a_released_job_is_posted_again_without_a_takeover() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        let (id, claim) = posted_and_claimed(&board, 1).await;
        board.release(&claim).await.unwrap();
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.takeovers, job.owner),
            (JobState::Posted, 0, None)
        );
        let next = board
            .claim(&owner("b"), &keys(), 1, HOLD)
            .await
            .unwrap()
            .remove(0);
        assert_eq!((next.id, next.epoch), (id, 2));
    });
}

#[test]
fn a_claimed_job_runs_durably_in_the_boards_store() {
    let (pg, board) = board();
    let store: Arc<dyn AsyncStore> = pg.store.clone();
    pg.rt.block_on(async {
        let id = board.post(&job(21)).await.unwrap().id();
        let claim = board
            .claim(&Owner::current(), &keys(), 1, HOLD)
            .await
            .unwrap()
            .remove(0);
        let inputs = DoubleInputs {
            x: claim.inputs["x"].as_u64().unwrap() as u32,
        };
        let out = Engine::serial()
            .run(Double, inputs)
            .durable(pg.store.clone(), &claim.id.run_id())
            .await
            .unwrap();
        assert_eq!(out.y, 42);
        board.complete(&claim, FlowState::Success).await.unwrap();
        let run = store.load_flow(&id.run_id()).await.unwrap().unwrap();
        assert_eq!(run.flow.state, FlowState::Success);
        assert_eq!(run.flow.fingerprint, claim.flow.fingerprint);
    });
}

#[test]
fn a_claims_view_ends_its_job_with_the_runs_last_checkpoint() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        // A job run to its end through its claim's view is DONE, with no call to `complete`.
        let (id, claim) = posted_and_claimed(&board, 21).await;
        let view = Arc::new(pg.store.for_claim(&claim));
        assert_eq!(view.completed(), None);
        let out = Engine::serial()
            .run(Double, DoubleInputs { x: 21 })
            .durable(view.clone(), &claim.id.run_id())
            .await
            .unwrap();
        assert_eq!(out.y, 42);
        assert_eq!(view.completed(), Some((FlowState::Success, JobState::Done)));
        let done = board.job(id).await.unwrap().unwrap();
        assert_eq!(done.state, JobState::Done);
        assert_eq!(done.outcome, Some(FlowState::Success));
        assert_eq!(done.owner, None);
        // Ended once: the claim no longer holds.
        assert!(matches!(
            board.complete(&claim, FlowState::Success).await,
            Err(StoreError::LostClaim { .. })
        ));
        // A job cancelled while it ran ends CANCELLED, as `complete` would end it.
        let (id, claim) = posted_and_claimed(&board, 5).await;
        board.cancel(id).await.unwrap();
        let view = Arc::new(pg.store.for_claim(&claim));
        Engine::serial()
            .run(Double, DoubleInputs { x: 5 })
            .durable(view.clone(), &claim.id.run_id())
            .await
            .unwrap();
        assert_eq!(
            view.completed(),
            Some((FlowState::Success, JobState::Cancelled))
        );
        assert_eq!(
            board.job(id).await.unwrap().unwrap().state,
            JobState::Cancelled
        );
    });
}

#[test]
fn the_runs_end_and_its_jobs_end_are_one_commit() {
    let (pg, board) = board();
    // The job's row refuses to end: the run's last checkpoint, in the same transaction, is
    // rolled back with it.
    pg.sql(&format!(
        "CREATE FUNCTION \"{s}\".refuse() RETURNS trigger AS $$ BEGIN \
           IF NEW.state = 'DONE' THEN RAISE EXCEPTION 'no end today'; END IF; RETURN NEW; \
         END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse BEFORE UPDATE ON \"{s}\".jobs \
           FOR EACH ROW EXECUTE FUNCTION \"{s}\".refuse();",
        s = pg.schema
    ))
    .unwrap();
    pg.rt.block_on(async {
        let (id, claim) = posted_and_claimed(&board, 21).await;
        let view = Arc::new(pg.store.for_claim(&claim));
        let err = Engine::serial()
            .run(Double, DoubleInputs { x: 21 })
            .durable(view.clone(), &claim.id.run_id())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no end today"), "{err}");
        assert_eq!(view.completed(), None);
        let run = pg.store.load_flow(&id.run_id()).await.unwrap().unwrap();
        assert_eq!(
            run.flow.state,
            FlowState::Running,
            "the run's end was rolled back"
        );
        assert_eq!(
            run.atom("double").unwrap().state,
            taskflow::StepState::Running
        );
        let job = board.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Claimed);
    });
}

#[test]
fn many_claims_complete_in_one_call_each_fenced_on_its_own() {
    let (pg, board) = board();
    pg.rt.block_on(async {
        for x in 0..3 {
            board.post(&job(x)).await.unwrap();
        }
        let mut claims = board
            .claim(&owner("a"), &keys(), 3, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(claims.len(), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The third job's claim ran out and `b` took it: `a` may end the other two only.
        let taken = board.claim(&owner("b"), &keys(), 1, HOLD).await.unwrap();
        assert_eq!(taken.len(), 1);
        claims.sort_by_key(|c| c.id);
        let lost_id = taken[0].id;
        let ended: Vec<(&Claim, FlowState)> = claims
            .iter()
            .map(|c| (c, FlowState::Success))
            .collect();
        let results = board.complete_many(&ended).await.unwrap();
        assert_eq!(results.len(), 3);
        for (claim, result) in claims.iter().zip(&results) {
            if claim.id == lost_id {
                assert!(
                    matches!(result, Err(StoreError::LostClaim { holder: Some(h), .. }) if h.host == "b"),
                    "{result:?}"
                );
                let job = board.job(claim.id).await.unwrap().unwrap();
                assert_eq!(job.state, JobState::Claimed, "b's claim is untouched");
            } else {
                assert!(matches!(result, Ok(JobState::Done)), "{result:?}");
                let job = board.job(claim.id).await.unwrap().unwrap();
                assert_eq!((job.state, job.outcome), (JobState::Done, Some(FlowState::Success)));
            }
        }
        assert!(board.complete_many(&[]).await.unwrap().is_empty());
    });
}
