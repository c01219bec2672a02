//! # taskflow
//!
//! Reliable workflows whose wiring is checked at compile time. Mark functions with
//! [`#[task]`](macro@task), compose them with [`flow!`], and run the flow with an [`Engine`]:
//! either every step completes, or every step that ran is undone by its revert hook.
//!
//! ```
//! use taskflow::prelude::*;
//!
//! #[task(provides = server_id, revert = delete_server)]
//! fn launch_server(image: &str) -> Result<u32, std::io::Error> {
//!     println!("launching {image}");
//!     Ok(7)
//! }
//!
//! #[revert]
//! fn delete_server(result: TaskOutcome<&u32>) {
//!     if let Ok(id) = result {
//!         println!("deleting server {id}");
//!     }
//! }
//!
//! #[task(provides = volume_id)]
//! async fn attach_volume(server_id: &u32, size_gb: u32) -> u64 {
//!     u64::from(*server_id) * 1000 + u64::from(size_gb)
//! }
//!
//! flow! {
//!     /// Boots a server and attaches a volume.
//!     pub flow BootVm(image: String, size_gb: u32) -> (server_id, volume_id) {
//!         linear [ launch_server, attach_volume ]
//!     }
//! }
//!
//! fn main() {
//!     let out = Engine::serial()
//!         .run_blocking(BootVm, BootVmInputs { image: "debian".into(), size_gb: 20 })
//!         .unwrap();
//!     assert_eq!((out.server_id, out.volume_id), (7, 7020));
//! }
//! ```
//!
//! See the crate's `docs/` folder and the README for the tour; [`flow!`] documents the syntax.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate self as taskflow;

mod engine;
mod error;
mod failure;
mod flow;
mod graph;
mod state;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use engine::Engine;
pub use error::FlowError;
pub use failure::{BoxError, Failure, PanicError};
pub use flow::Flow;
pub use graph::{FlowGraph, StepInfo, StepKind};
pub use state::FlowState;
pub use taskflow_macros::{flow, revert, task};

/// What a revert hook's `result` parameter receives: `Ok` with references to the task's outputs
/// when the task had succeeded, `Err` with its failure when this very task failed (a cheap clone:
/// [`Failure`] shares its error).
///
/// A task with one output gets `TaskOutcome<&T>`, with `provides = (a, b)` it gets
/// `TaskOutcome<(&A, &B)>`, with no output `TaskOutcome<()>`.
///
/// ```
/// use taskflow::{TaskOutcome, Failure};
/// fn undo(result: TaskOutcome<&u32>) -> String {
///     match result {
///         Ok(id) => format!("delete {id}"),
///         Err(failure) => format!("nothing to delete: {failure}"),
///     }
/// }
/// assert_eq!(undo(Ok(&3)), "delete 3");
/// ```
pub type TaskOutcome<T> = Result<T, Failure>;

/// Everything a flow author needs: `use taskflow::prelude::*;`.
pub mod prelude {
    pub use crate::{flow, revert, task, Engine, Failure, Flow, FlowError, FlowState, TaskOutcome};
}
