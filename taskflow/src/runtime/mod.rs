//! The runtime: what one run of a flow is and how its steps move, whichever engine runs it.
//!
//! - [`run`]: the [`Run`] (a flow's typed values and the state of its steps), and the one place
//!   a step or a flow changes state, checked against TaskFlow's transition tables;
//! - [`run_context`]: what travels with a run (engine mode, listeners, suspend, journal);
//! - [`step`]: one step's life-cycle, shared by both engines;
//! - [`failed`]: why steps and runs stop;
//! - [`failure`]: what the retry controllers decide after a failure;
//! - [`controller`]: calling a retry controller, whose panic is a failure of its scope;
//! - [`revert`]: undoing what ran, in reverse dependency order;
//! - [`fan_out`]: `map` steps;
//! - [`pool`]: the parallel engine's worker threads.
//!
//! The engines (`crate::engine`) keep only their scheduling policy on top of these.

pub(crate) mod controller;
pub(crate) mod failed;
pub(crate) mod failure;
pub(crate) mod fan_out;
pub(crate) mod pool;
pub(crate) mod revert;
pub(crate) mod run;
pub(crate) mod run_context;
pub(crate) mod step;

pub use failed::StepFailed;
pub use run::At;
pub(crate) use run::Run;
pub(crate) use run_context::Mode;
pub use run_context::{RunContext, SuspendHandle};
