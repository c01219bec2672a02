//! A persistent pool of worker threads for sync steps: no thread is spawned per step.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// A job and the Tokio runtime it was submitted from: sync steps run inside that runtime's
/// context, so they may call `tokio::spawn` or `Handle::current()` like code on the runtime.
type Queued = (Option<tokio::runtime::Handle>, Job);

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    closed: bool,
    /// Workers waiting for a job: only as many are woken as there are jobs for.
    idle: usize,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// Worker threads that run jobs from one shared queue. Dropping the pool lets the workers finish
/// the queued jobs and exit.
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(workers: usize) -> Pool {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
        });
        for i in 0..workers {
            let worker = inner.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("taskflow-worker-{i}"))
                .spawn(move || work(&worker));
            if spawned.is_err() && i == 0 {
                // Without a single worker, sync steps would never run: run them on the caller.
                inner.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            }
        }
        Pool { inner }
    }

    /// Queues `jobs` under one lock and wakes only as many idle workers as there are new jobs
    /// (each wake is a system call); runs them right here when the pool has no thread at all.
    pub(crate) fn submit_all(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.closed {
            drop(queue);
            jobs.into_iter().for_each(|job| job());
            return;
        }
        let wake = jobs.len().min(queue.idle);
        let runtime = tokio::runtime::Handle::try_current().ok();
        queue
            .jobs
            .extend(jobs.into_iter().map(|job| (runtime.clone(), job)));
        drop(queue);
        for _ in 0..wake {
            self.inner.ready.notify_one();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.inner.ready.notify_all();
    }
}

/// Jobs a worker takes per visit to the queue: a share of what is queued, so a wide fan-out costs
/// few lock round trips while the other workers still get work.
fn batch(queued: usize, workers_waiting: usize) -> usize {
    (queued / (workers_waiting + 2)).clamp(1, 32)
}

fn work(inner: &Inner) {
    let mut queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
    let mut taken: Vec<Queued> = Vec::new();
    loop {
        if !queue.jobs.is_empty() {
            let n = batch(queue.jobs.len(), queue.idle);
            taken.extend(queue.jobs.drain(..n));
            drop(queue);
            for (runtime, job) in taken.drain(..) {
                let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                // Steps catch their own panics; this guards the worker against anything else.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            queue = inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        } else if queue.closed {
            return;
        } else {
            queue.idle += 1;
            queue = inner.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
            queue.idle -= 1;
        }
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives a future to completion on this thread. A sync step's future is ready at its first poll.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
