use taskflow::prelude::*;

mod infra {
    use taskflow::prelude::*;

    #[derive(Debug, thiserror::Error)]
    #[error("nova is down")]
    pub struct NovaError;

    #[task(provides = server_id, revert = delete_server)]
    pub async fn launch_server(image: &str) -> Result<u32, NovaError> {
        println!("launch {image}");
        Ok(7)
    }

    #[revert]
    pub async fn delete_server(result: TaskOutcome<&u32>, image: String) {
        println!("delete {:?} {image}", result.map(|x| *x).map_err(|f| f.to_string()));
    }
}

#[task(provides = volume_id)]
fn attach_volume(server_id: &u32, size_gb: u32) -> u64 {
    u64::from(*server_id) * 1000 + u64::from(size_gb)
}

#[task(provides = (a, b))]
fn split(volume_id: u64, #[default] extra: u32) -> (u64, u32) {
    (volume_id, extra)
}

flow! {
    /// Boots.
    pub flow BootVm(image: String, size_gb: u32) -> (server_id, volume_id: u64) {
        linear [ infra::launch_server, attach_volume ]
    }
}

flow! {
    flow Outer(image: String, size_gb: u32) -> (a, b, server_id) {
        linear [ BootVm, split ]
    }
}

fn main() {
    let out = Engine::serial()
        .run_blocking(BootVm, BootVmInputs { image: "debian".into(), size_gb: 20 })
        .unwrap();
    println!("{out:?}");
    let out = Engine::serial()
        .run_blocking(Outer, OuterInputs { image: "debian".into(), size_gb: 20 })
        .unwrap();
    println!("{out:?}");
    println!("{}", Outer::graph().to_dot());
}
