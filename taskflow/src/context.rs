//! What a running task can reach: its name and a way to report progress.

use crate::runtime::RunContext;

/// Handed to a task that takes a `ctx: &TaskContext` parameter (any name; the type is what
/// counts). It is not a flow value: `flow!` supplies it.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use taskflow::prelude::*;
/// use taskflow::{Listener, ProgressEvent, TaskContext};
///
/// #[task(provides = copied)]
/// fn copy(ctx: &TaskContext, files: u32) -> u32 {
///     for i in 1..=files {
///         ctx.progress(i as f32 / files as f32);
///     }
///     files
/// }
///
/// #[derive(Default)]
/// struct Seen(Mutex<Vec<f32>>);
/// impl Listener for Seen {
///     fn on_progress(&self, e: &ProgressEvent<'_>) { self.0.lock().unwrap().push(e.progress); }
/// }
///
/// flow! { flow Copy(files: u32) -> (copied) { linear [ copy ] } }
///
/// fn main() {
///     let seen = Arc::new(Seen::default());
///     Engine::serial().listener(seen.clone()).run(Copy, CopyInputs { files: 4 }).blocking().unwrap();
///     assert_eq!(*seen.0.lock().unwrap(), [0.25, 0.5, 0.75, 1.0]);
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TaskContext {
    run: RunContext,
    step: &'static str,
}

impl TaskContext {
    #[doc(hidden)]
    pub fn __new(run: &RunContext, step: &'static str) -> Self {
        TaskContext {
            run: run.clone(),
            step,
        }
    }

    /// Reports how far the step is, from 0.0 to 1.0 (clamped), to the engine's listeners (and,
    /// in a durable run, to the step's record). A NaN (a `0.0 / 0.0` somewhere) is ignored: it
    /// says nothing about how far the step is, listeners do not see it, and it is not stored.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use taskflow::prelude::*;
    /// use taskflow::{Listener, ProgressEvent, TaskContext};
    ///
    /// #[task(provides = done)]
    /// fn scan(ctx: &TaskContext, found: u32, total: u32) -> bool {
    ///     ctx.progress(found as f32 / total as f32); // 0 / 0: NaN, ignored
    ///     ctx.progress(2.0); // clamped to 1.0
    ///     true
    /// }
    ///
    /// #[derive(Default)]
    /// struct Seen(Mutex<Vec<f32>>);
    /// impl Listener for Seen {
    ///     fn on_progress(&self, e: &ProgressEvent<'_>) { self.0.lock().unwrap().push(e.progress); }
    /// }
    ///
    /// flow! { flow Scan(found: u32, total: u32) -> (done) { linear [ scan ] } }
    ///
    /// fn main() {
    ///     let seen = Arc::new(Seen::default());
    ///     let inputs = ScanInputs { found: 0, total: 0 };
    ///     Engine::serial().listener(seen.clone()).run(Scan, inputs).blocking().unwrap();
    ///     assert_eq!(*seen.0.lock().unwrap(), [1.0]);
    /// }
    /// ```
    pub fn progress(&self, fraction: f32) {
        if fraction.is_nan() {
            return;
        }
        self.run.progress(self.step, fraction.clamp(0.0, 1.0));
    }

    /// The step's name in its flow.
    pub fn step(&self) -> &str {
        self.step
    }

    /// The path of the flow the step runs in (`Parent/step` inside a sub-flow).
    pub fn flow(&self) -> &str {
        self.run.flow()
    }
}
