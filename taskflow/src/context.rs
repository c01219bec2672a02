//! What a running task can reach: its name, a way to report progress, and an idempotency key.

use crate::runtime::At;
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
    /// The attempts of the retry scopes around the step, outermost first (see [`At`]).
    attempts: String,
    /// The item of a `map` step.
    item: Option<usize>,
}

impl TaskContext {
    #[doc(hidden)]
    pub fn __new(run: &RunContext, step: &'static str, at: At<'_>, index: usize) -> Self {
        TaskContext {
            run: run.clone(),
            step,
            attempts: at.attempts(run.attempts(), index),
            item: None,
        }
    }

    /// The context of item `item` of a `map` step.
    #[doc(hidden)]
    pub fn __item(&self, item: usize) -> Self {
        TaskContext {
            item: Some(item),
            ..self.clone()
        }
    }

    /// A key that names this execution of the step, for an external API that takes an
    /// idempotency key (a payment provider, a cloud API): the same when the step runs again
    /// after a take-over or a crash (the run resumed, from any process), and different for every
    /// new execution — each retry attempt (of every retry scope around the step, in sub-flows
    /// too), each item of a `map` step, each run.
    ///
    /// It reads `<run>:<step path>[:<attempts>][#<item>]`: the run's id (a durable run's flow
    /// id; a run without a store gets a fresh one), the step's path in the run (`Sub/step`
    /// inside a sub-flow), the attempt of each retry scope around it, outermost first (`1.2`;
    /// left out with its `:` outside any scope), and a `map` step's item index. Printable ASCII
    /// as long as the run's id and step names are.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use taskflow::prelude::*;
    /// use taskflow::TaskContext;
    /// use taskflow::store::MemoryStore;
    ///
    /// static KEYS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    ///
    /// #[task(provides = charge_id)]
    /// fn charge(ctx: &TaskContext, cents: u64) -> Result<String, std::io::Error> {
    ///     // e.g. the `Idempotency-Key` header of a payment API's request
    ///     let mut keys = KEYS.lock().unwrap();
    ///     keys.push(ctx.idempotency_key());
    ///     if keys.len() == 1 {
    ///         return Err(std::io::Error::other("timed out")); // the retry is a new execution
    ///     }
    ///     Ok(format!("ch-{cents}"))
    /// }
    ///
    /// flow! { flow Pay(cents: u64) -> (charge_id) { retry(Times(2)) linear [ charge ] } }
    ///
    /// fn main() {
    ///     let store = Arc::new(MemoryStore::new());
    ///     let engine = Engine::serial();
    ///     engine.run(Pay, PayInputs { cents: 500 }).durable(store, "pay-7").blocking().unwrap();
    ///     assert_eq!(*KEYS.lock().unwrap(), ["pay-7:charge:1", "pay-7:charge:2"]);
    /// }
    /// ```
    pub fn idempotency_key(&self) -> String {
        let mut key = format!("{}:{}", self.run.run_id(), self.run.path(self.step));
        if !self.attempts.is_empty() {
            key.push(':');
            key.push_str(&self.attempts);
        }
        if let Some(item) = self.item {
            key.push('#');
            key.push_str(&item.to_string());
        }
        key
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
