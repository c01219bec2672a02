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
//!     pub flow BootVm(image: String, size_gb: u32) -> (server_id: u32, volume_id: u64) {
//!         linear [ launch_server, attach_volume ]
//!     }
//! }
//!
//! fn main() {
//!     let out = Engine::serial()
//!         .run(BootVm, BootVmInputs { image: "debian".into(), size_gb: 20 }).blocking()
//!         .unwrap();
//!     assert_eq!((out.server_id, out.volume_id), (7, 7020));
//! }
//! ```
//!
//! See the crate's `docs/` folder and the README for the tour; [`flow!`] documents the syntax.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate self as taskflow;

#[cfg(feature = "postgres")]
pub mod conductor;
mod context;
mod durable;
mod engine;
mod error;
mod failure;
mod flow;
mod graph;
mod listener;
mod retry;
mod runtime;
mod state;
pub mod store;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// Hidden traits that rustc names in the notes under an error ("required for `Measure` to
// implement `DurableSubflow<'_>`"): rustc prints an item by its shortest visible name when that
// name is unique, and items reached only through the hidden `__private` are printed with it.
#[doc(hidden)]
pub use __private::{SubflowIn as DurableSubflow, TaskError};

pub use context::TaskContext;
pub use durable::{
    fingerprint, release_held, DurableError, DurableFlow, HeldStep, OnTakeover, OutcomeUnknown,
    RecordedError, Release, ValueError,
};
pub use engine::{
    Durable, Ending, Engine, InMemory, Outcome, Paused, RunBuilder, RunStart, Storage, ToEnd, Until,
};
pub use error::FlowError;
pub use failure::{BoxError, Cancelled, Failure, PanicError};
pub use flow::Flow;
pub use graph::{FlowGraph, GraphJsonError, StepInfo, StepKind};
pub use listener::{
    FlowEvent, Listener, ProgressEvent, StepEvent, StepTiming, TimingListener, TracingListener,
};
pub use retry::{
    AlwaysRevert, AlwaysRevertAll, Backoff, Decision, ForEach, History, Retry, Times, WithBackoff,
};
pub use runtime::SuspendHandle;
pub use state::{FlowState, StepState};
/// Marks a function as a task: a step a [`flow!`] can run.
///
/// The function stays exactly as written and directly callable. Next to it the attribute emits
/// hidden items (under the same name, in the type and macro namespaces) that tell `flow!` what the
/// task requires and provides.
///
/// - **Requires**: the parameter names. A flow binds each parameter to the flow value of the same
///   name (or to another one with `step(param = name)`). A parameter taken by reference (`&T`)
///   borrows the value; one taken by value gets a clone, or the value itself when that parameter
///   is the only place in the flow that reads it (no other step, revert hook or flow output). So
///   a value that is not `Clone` can be handed to exactly one consumer by value.
/// - `#[default]` on a parameter: when nothing in the flow binds it, it takes
///   `Default::default()` (TaskFlow's optional arguments).
/// - **Provides**: `provides = name` names the return value; `provides = (a, b)` splits a
///   returned tuple. Without `provides` the return value is dropped.
/// - **Fails**: a return type whose last path segment is `Result` (`Result<T, E>`,
///   `anyhow::Result<T>`, `io::Result<T>`) makes the task fallible with output `T`; `E` must
///   convert into `Box<dyn Error + Send + Sync>`. A panic is a failure too, of any task.
/// - `revert = hook`: the function to call to undo the task; mark it with [`#[revert]`](macro@revert).
/// - `on_takeover = rerun | revert_then_rerun | hold`: what resuming a run does with this step
///   when it was RUNNING as the run was interrupted (see [`OnTakeover`]; `rerun` by default).
/// - `export`: makes the task usable from other crates' flows (`use other_crate::my_task;`).
///
/// Sync and async functions mix freely. Generic functions and `&mut` parameters are rejected.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("no capacity for {0} GB")]
/// struct NoCapacity(u32);
///
/// #[task(provides = volume_id, revert = delete_volume)]
/// async fn create_volume(size_gb: u32, #[default] thin: bool) -> Result<String, NoCapacity> {
///     if size_gb > 1000 { return Err(NoCapacity(size_gb)); }
///     Ok(format!("vol-{size_gb}{}", if thin { "-thin" } else { "" }))
/// }
///
/// #[revert]
/// async fn delete_volume(result: TaskOutcome<&String>) {
///     if let Ok(id) = result { println!("deleting {id}"); }
/// }
///
/// #[task(provides = (name, size))]
/// fn describe(volume_id: &str, size_gb: u32) -> (String, u32) {
///     (volume_id.to_uppercase(), size_gb)
/// }
///
/// flow! {
///     flow Volume(size_gb: u32) -> (name, size) { linear [ create_volume, describe ] }
/// }
///
/// fn main() {
///     let out = Engine::serial().run(Volume, VolumeInputs { size_gb: 8 }).blocking().unwrap();
///     assert_eq!((out.name.as_str(), out.size), ("VOL-8", 8));
///     // Still a plain function:
///     assert_eq!(describe("v", 1), ("V".to_owned(), 1));
/// }
/// ```
pub use taskflow_macros::task;

/// Marks a function as a revert hook, named by a task's `#[task(revert = this_fn)]`.
///
/// A hook binds its parameters by name, like a task. It may take:
/// - any input of its task, by reference or by value (cloned): by `&P` the input must be a `P`
///   or dereference to one (a `&str` of a `String` input), by value it is the input's owned
///   type (`String` of a `&str` input); another type is one compile error on the hook's
///   parameter, naming the input and both types;
/// - `result`: a [`TaskOutcome`] — `Ok` with references to the task's outputs when the task had
///   succeeded (a later step failed), `Err(failure)` when this very task is the one that failed;
/// - `failures: &[Failure]`: what failed in the flow.
///
/// It may be sync or async and return `()` or `Result<(), E>`. A hook that returns `Err` or panics
/// is recorded in [`FlowError::revert_failures`], the other reverts still run, and the flow ends in
/// [`FlowState::Failure`] instead of `Reverted`. A parameter with any other name is a compile error
/// pointing at it, and so is a `result` or `failures` of another type (the error says which type
/// it must be: `TaskOutcome<&u32>` above, `TaskOutcome<()>` for a task without outputs,
/// `TaskOutcome<(&A, &B)>` for two).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskflow::prelude::*;
///
/// type Log = Arc<Mutex<Vec<String>>>;
///
/// #[task(provides = lease, revert = release)]
/// fn acquire(log: &Log, pool: &str) -> u32 {
///     log.lock().unwrap().push(format!("acquire from {pool}"));
///     7
/// }
///
/// #[revert]
/// fn release(log: &Log, pool: String, result: TaskOutcome<&u32>, failures: &[Failure]) {
///     let why = failures[0].step();
///     log.lock().unwrap().push(format!("release {:?} to {pool} because {why} failed", result.ok()));
/// }
///
/// #[task]
/// fn use_it(lease: u32) -> Result<(), std::io::Error> {
///     Err(std::io::Error::other(format!("lease {lease} is stale")))
/// }
///
/// flow! {
///     flow Lease(log: Log, pool: String) { linear [ acquire, use_it ] }
/// }
///
/// fn main() {
///     let log = Log::default();
///     let err = Engine::serial()
///         .run(Lease, LeaseInputs { log: log.clone(), pool: "gpu".into() }).blocking()
///         .unwrap_err();
///     assert_eq!(err.failed_step(), "use_it");
///     assert_eq!(
///         *log.lock().unwrap(),
///         ["acquire from gpu", "release Some(7) to gpu because use_it failed"]
///     );
/// }
/// ```
pub use taskflow_macros::revert;

/// Defines a flow: named inputs, a pattern of steps, named outputs — checked at compile time.
///
/// ```text
/// flow!{
///     /// docs (land on the generated struct)
///     [pub] flow Name(input: Type, ..) -> (output, output: Type, ..) {
///         pattern
///     }
/// }
/// pattern := linear [ item, .. ]      items in order
///          | unordered [ item, .. ]   independent items (no data between them)
///          | graph [ item, .. ]       order from data dependencies and links `a -> b`
/// item    := pattern | step | a -> b  (a link, in a graph, between two steps' names)
/// step    := path                     a #[task] fn or another flow, by path
///            (param = name, ..)       rebind: the parameter reads another flow value
///            -> name | -> (a, b)      rename the step's outputs
///            as label                 the step's name (needed when a task is used twice)
/// ```
///
/// It emits a unit struct `Name` (implementing [`Flow`]), `NameInputs` and `NameOutputs` with one
/// public field per input and output, and a static executor: every value lives in a typed slot of
/// a generated struct and every step is a generated call, in a topological order fixed at compile
/// time. `Name::graph()` returns the structure as data ([`FlowGraph`], with a DOT rendering).
///
/// **Checked at compile time**, each as an error on your own token inside `flow!`: an input no
/// earlier step provides (with "provided later by …" or "did you mean …" hints), a name provided
/// twice (a flow input and a step output count too), a cycle (printed once, `a -> b -> a`), a data
/// dependency inside `unordered`, an unused input (one that no step and no decider reads), an
/// output nothing provides, rebinding a parameter that does not exist, an empty pattern, a link
/// outside a `graph`, a flow named like one of its steps (reported alone, as nothing else can be
/// checked then), and type mismatches (rustc's own error, at the step). Every mistake in a flow is
/// reported in the same build.
///
/// Output types may be written (`-> (id: ServerId)`); they must be when the flow is more visible
/// than the task that provides the output (a `pub flow` over private tasks), since the type is
/// otherwise named through that task.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = server_id)]
/// fn launch(image: &str) -> u32 { image.len() as u32 }
///
/// #[task(provides = volume_id)]
/// async fn attach(server_id: &u32, size_gb: u32) -> u64 { u64::from(server_id + size_gb) }
///
/// #[task(provides = dns)]
/// fn register(server_id: &u32) -> String { format!("srv{server_id}.example") }
///
/// #[task]
/// fn announce(dns: &str, volume_id: u64) { println!("{dns} has volume {volume_id}") }
///
/// flow! {
///     /// Boots a server, then storage and DNS side by side, then announces it.
///     pub flow Boot(image: String, size_gb: u32) -> (server_id: u32, volume_id: u64, dns: String) {
///         linear [
///             launch,
///             unordered [ attach, register ],
///             announce,
///         ]
///     }
/// }
///
/// flow! {
///     /// Boots two servers: a flow is a step like any other; `as` names each use.
///     flow BootTwo(first: String, second: String, size_gb: u32) -> (a, b) {
///         graph [
///             Boot(image = first) -> (a, volume_a, dns_a) as boot_a,
///             Boot(image = second) -> (b, volume_b, dns_b) as boot_b,
///             boot_a -> boot_b,
///         ]
///     }
/// }
///
/// fn main() {
///     let out = Engine::serial()
///         .run(BootTwo, BootTwoInputs { first: "debian".into(), second: "arch".into(), size_gb: 1 }).blocking()
///         .unwrap();
///     assert_eq!((out.a, out.b), (6, 4));
///     assert!(BootTwo::graph().to_dot().contains("\"BootTwo/boot_a\" -> \"BootTwo/boot_b\""));
/// }
/// ```
pub use taskflow_macros::flow;

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

/// One page per concept; every example on them runs as a test.
pub mod guide {
    #[doc = include_str!("../../docs/guide/patterns.md")]
    pub mod patterns {}
    #[doc = include_str!("../../docs/guide/retries.md")]
    pub mod retries {}
    #[doc = include_str!("../../docs/guide/deciders.md")]
    pub mod deciders {}
    #[doc = include_str!("../../docs/guide/fan_out.md")]
    pub mod fan_out {}
    #[doc = include_str!("../../docs/guide/listeners.md")]
    pub mod listeners {}
    #[doc = include_str!("../../docs/guide/suspend.md")]
    pub mod suspend {}
    #[doc = include_str!("../../docs/guide/durability.md")]
    pub mod durability {}
    #[cfg(feature = "postgres")]
    #[doc = include_str!("../../docs/guide/many_machines.md")]
    pub mod many_machines {}
}

/// Everything a flow author needs.
///
/// ```
/// use taskflow::prelude::*;
///
/// #[task(provides = y)]
/// fn inc(x: u32) -> u32 { x + 1 }
///
/// flow! { flow Inc(x: u32) -> (y) { linear [ inc ] } }
///
/// fn main() {
///     assert_eq!(Engine::serial().run(Inc, IncInputs { x: 1 }).blocking().unwrap().y, 2);
/// }
/// ```
pub mod prelude {
    pub use crate::{
        flow, revert, task, AlwaysRevert, AlwaysRevertAll, Backoff, Engine, Failure, Flow,
        FlowError, FlowState, ForEach, Retry, TaskContext, TaskOutcome, Times,
    };
}
