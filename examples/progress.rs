//! A live progress bar over a flow with a slow fan-out: one bar per step, fed by a `Listener`.
//!
//! ```text
//! cargo run --example progress
//! ```
//! Each file of the fan-out takes a moment to "upload"; the upload step reports how many of its
//! items are done through its `TaskContext`, and the listener moves the bars.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use taskflow::prelude::*;
use taskflow::{FlowEvent, Listener, ProgressEvent, StepEvent, StepState};

/// Counts finished uploads, so each one can report the share of the whole fan-out that is done.
#[derive(Clone, Default)]
struct Done(Arc<AtomicUsize>);

#[task(provides = files)]
fn list_files(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("photo-{i:02}.jpg")).collect()
}

#[task(provides = url)]
async fn upload(file: String, ctx: &TaskContext, done: &Done, files: &[String]) -> String {
    // A slow network: 150 ms per file; the parallel engine uploads them all at once.
    tokio::time::sleep(Duration::from_millis(150 + 20 * (file.len() as u64 % 7))).await;
    let finished = done.0.fetch_add(1, Ordering::SeqCst) + 1;
    ctx.progress(finished as f32 / files.len() as f32);
    format!("https://cdn.example/{file}")
}

#[task(provides = index)]
fn write_index(urls: &[String]) -> String {
    urls.join("\n")
}

flow! {
    flow Publish(count: usize, done: Done) -> (index) {
        linear [ list_files, map upload over files -> urls, write_index ]
    }
}

/// One bar per step, created when the step starts.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn bar(&self, step: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap();
        bars.entry(step.to_owned())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(100));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos:>3}% {msg}")
                        .unwrap()
                        .progress_chars("=> "),
                );
                bar.set_prefix(step.to_owned());
                bar
            })
            .clone()
    }
}

impl Listener for Bars {
    fn on_flow(&self, e: &FlowEvent<'_>) {
        let _ = self.multi.println(format!("flow {} {}", e.flow, e.state));
    }

    fn on_step(&self, e: &StepEvent<'_>) {
        let bar = self.bar(e.step);
        match e.state {
            StepState::Running => bar.set_message("running"),
            StepState::Success => {
                bar.set_position(100);
                bar.finish_with_message("done");
            }
            other => bar.set_message(other.to_string()),
        }
    }

    fn on_progress(&self, e: &ProgressEvent<'_>) {
        self.bar(e.step).set_position((e.progress * 100.0) as u64);
    }
}

fn main() {
    let bars = Arc::new(Bars {
        multi: MultiProgress::new(),
        bars: Mutex::default(),
    });
    let engine = Engine::parallel().listener(bars.clone());
    let out = engine
        .run(
            Publish,
            PublishInputs {
                count: 24,
                done: Done::default(),
            },
        )
        .blocking()
        .expect("the publish flow has no failing step");
    println!("index of {} files written", out.index.lines().count());
}
