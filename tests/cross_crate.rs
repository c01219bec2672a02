//! Tasks marked `#[task(export)]` in another crate compose like local ones.
use taskflow::prelude::*;
use taskflow_helper_crate::{label_volume, storage, LOG};

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

#[task]
fn refuse(label: &str) -> Result<(), Refused> {
    let _ = label;
    Err(Refused)
}

flow! {
    flow Provision(size_gb: u32) -> (volume_id, label) {
        linear [ storage::create_volume, label_volume ]
    }
}

flow! {
    flow ProvisionAndFail(size_gb: u32) {
        linear [ storage::create_volume, label_volume, refuse ]
    }
}

#[test]
fn exported_tasks_run_and_revert_from_another_crate() {
    let out = Engine::serial()
        .run(Provision, ProvisionInputs { size_gb: 3 })
        .blocking()
        .unwrap();
    assert_eq!((out.volume_id, out.label.as_str()), (30, "vol-30"));

    LOG.lock().unwrap().clear();
    let err = Engine::serial()
        .run(ProvisionAndFail, ProvisionAndFailInputs { size_gb: 4 })
        .blocking()
        .unwrap_err();
    assert_eq!(err.failed_step(), "refuse");
    assert_eq!(
        *LOG.lock().unwrap(),
        ["create_volume 4", "delete_volume 40"]
    );
}
