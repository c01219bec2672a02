//! Fan-out: `map task over values -> outputs` runs the task once per element (concurrently on the
//! parallel engine) and provides a `Vec` in input order; on failure each finished item is
//! reverted on its own.
mod common;

use std::time::Duration;

use common::{Refused, Trace};
use taskflow::prelude::*;

#[task(provides = volume_id, revert = delete_volume)]
async fn create_volume(size_gb: u32, trace: &Trace, zone: &str) -> Result<String, Refused> {
    // Later items finish first on the parallel engine: the output order must not depend on it.
    tokio::time::sleep(Duration::from_millis(u64::from(50 - size_gb.min(50)))).await;
    if size_gb == 13 {
        trace.push("create 13 fails");
        return Err(Refused(size_gb));
    }
    trace.push(format!("create {size_gb}"));
    Ok(format!("{zone}-vol{size_gb}"))
}

#[revert]
fn delete_volume(size_gb: &u32, trace: &Trace, result: TaskOutcome<&String>) {
    match result {
        Ok(id) => trace.push(format!("delete {id} ({size_gb})")),
        Err(_) => trace.push(format!("nothing to delete for {size_gb}")),
    }
}

#[task(provides = total)]
fn count(volume_ids: &[String]) -> usize {
    volume_ids.len()
}

flow! {
    flow Volumes(trace: Trace, zone: String, sizes: Vec<u32>) -> (volume_ids, total) {
        linear [ map create_volume over sizes -> volume_ids, count ]
    }
}

#[test]
fn a_map_provides_one_output_per_item_in_input_order() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let inputs = VolumesInputs {
            trace: trace.clone(),
            zone: "eu".into(),
            sizes: vec![10, 20, 30],
        };
        let out = engine.run(Volumes, inputs).blocking().unwrap();
        assert_eq!(out.volume_ids, ["eu-vol10", "eu-vol20", "eu-vol30"]);
        assert_eq!(out.total, 3);
        let mut events = trace.events();
        events.sort();
        assert_eq!(events, ["create 10", "create 20", "create 30"]);
    }
}

static MEET: std::sync::LazyLock<tokio::sync::Barrier> =
    std::sync::LazyLock::new(|| tokio::sync::Barrier::new(3));

#[derive(Debug, thiserror::Error)]
#[error("item {0} waited alone: the items did not run at the same time")]
struct Alone(u32);

#[task(provides = met)]
async fn meet(item: u32) -> Result<u32, Alone> {
    tokio::time::timeout(Duration::from_secs(5), MEET.wait())
        .await
        .map_err(|_| Alone(item))?;
    Ok(item)
}

flow! {
    flow Meet(items: Vec<u32>) -> (all_met) { linear [ map meet over items -> all_met ] }
}

#[test]
fn on_the_parallel_engine_items_run_concurrently() {
    // Three items meet at a barrier for three: run one by one, the first would wait alone.
    let out = Engine::parallel()
        .run(
            Meet,
            MeetInputs {
                items: vec![1, 2, 3],
            },
        )
        .blocking()
        .unwrap();
    assert_eq!(out.all_met, [1, 2, 3]);
}

#[test]
fn a_failed_item_reverts_each_finished_item_on_its_own() {
    // Serial: items in order; the failing third one stops the map, the fourth never runs.
    let trace = Trace::default();
    let inputs = VolumesInputs {
        trace: trace.clone(),
        zone: "eu".into(),
        sizes: vec![10, 20, 13, 40],
    };
    let err = Engine::serial()
        .run(Volumes, inputs)
        .blocking()
        .unwrap_err();
    assert_eq!(err.failed_step(), "create_volume");
    assert_eq!(
        err.failures()[0].downcast_ref::<Refused>(),
        Some(&Refused(13))
    );
    assert_eq!(
        trace.events(),
        [
            "create 10",
            "create 20",
            "create 13 fails",
            "nothing to delete for 13",
            "delete eu-vol20 (20)",
            "delete eu-vol10 (10)"
        ]
    );

    // Parallel: every item ran; each finished one is reverted, the failed one gets its failure.
    let trace = Trace::default();
    let inputs = VolumesInputs {
        trace: trace.clone(),
        zone: "eu".into(),
        sizes: vec![10, 20, 13, 40],
    };
    Engine::parallel()
        .run(Volumes, inputs)
        .blocking()
        .unwrap_err();
    let events = trace.events();
    let reverts: Vec<&String> = events.iter().skip(4).collect();
    assert_eq!(
        reverts,
        [
            "delete eu-vol40 (40)",
            "nothing to delete for 13",
            "delete eu-vol20 (20)",
            "delete eu-vol10 (10)"
        ]
    );
}

#[task]
fn refuse(total: usize) -> Result<(), Refused> {
    Err(Refused(total as u32))
}

flow! {
    flow VolumesThenFail(trace: Trace, zone: String, sizes: Vec<u32>) {
        linear [ map create_volume over sizes -> volume_ids, count, refuse ]
    }
}

#[test]
fn a_later_failure_reverts_every_item_newest_first() {
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let inputs = VolumesThenFailInputs {
            trace: trace.clone(),
            zone: "us".into(),
            sizes: vec![1, 2],
        };
        engine.run(VolumesThenFail, inputs).blocking().unwrap_err();
        let events = trace.events();
        assert_eq!(
            &events[2..],
            ["delete us-vol2 (2)", "delete us-vol1 (1)"],
            "{engine:?}"
        );
    }
}

#[task(provides = squared)]
fn square(n: u64) -> u64 {
    n * n
}

flow! {
    flow Squares(numbers: Vec<u64>) -> (squares) { linear [ map square over numbers -> squares ] }
}

#[test]
fn a_sync_map_runs_on_the_worker_pool_and_keeps_input_order() {
    for engine in [Engine::serial(), Engine::parallel().workers(2)] {
        let numbers: Vec<u64> = (0..200).collect();
        let out = engine
            .run(
                Squares,
                SquaresInputs {
                    numbers: numbers.clone(),
                },
            )
            .blocking()
            .unwrap();
        assert_eq!(
            out.squares,
            numbers.iter().map(|n| n * n).collect::<Vec<_>>()
        );
        let out = engine
            .run(Squares, SquaresInputs { numbers: vec![] })
            .blocking()
            .unwrap();
        assert!(out.squares.is_empty());
    }
}

fn tag_name(name: &str, trace: &Trace) -> String {
    trace.push(format!("tag {name}"));
    format!("#{name}")
}

#[revert]
fn untag_name(name: &str, trace: &Trace, result: TaskOutcome<&String>) {
    trace.push(format!(
        "untag {name} ({})",
        result.map_or("-", |t| t.as_str())
    ));
}

#[task(provides = published)]
fn publish(tags: &[String]) -> Result<usize, Refused> {
    Err(Refused(tags.len() as u32))
}

#[task(provides = tag, revert = untag_name)]
fn tag_name_undone(name: &str, trace: &Trace) -> String {
    tag_name(name, trace)
}

flow! {
    flow Tags(trace: Trace, names: Vec<String>) -> (published) {
        linear [ map tag_name_undone over names -> tags, publish ]
    }
}

#[test]
fn a_map_revert_hook_reads_each_element_as_its_task_does() {
    // `Vec<String>` elements into a `&str` parameter, in the task and in its revert hook (which
    // reads the element through `__private::element_of`, not through the step's checks).
    for engine in [Engine::serial(), Engine::parallel()] {
        let trace = Trace::default();
        let inputs = TagsInputs {
            trace: trace.clone(),
            names: vec!["a".into(), "b".into()],
        };
        assert!(engine.run(Tags, inputs).blocking().is_err());
        let events = trace.events();
        let mut ran = events[..2].to_vec();
        ran.sort();
        assert_eq!(ran, ["tag a", "tag b"], "{engine:?}");
        let mut undone = events[2..].to_vec();
        undone.sort();
        assert_eq!(undone, ["untag a (#a)", "untag b (#b)"], "{engine:?}");
    }
}
