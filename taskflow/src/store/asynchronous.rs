//! Stores whose I/O is asynchronous (a network database), and the store of a run, of either kind.
//!
//! A durable run is given an [`AnyStore`]: a [`Store`] (blocking I/O: memory, a directory,
//! SQLite) or an [`AsyncStore`] (asynchronous I/O). The run awaits every write, so neither kind
//! blocks the thread that drives the run while it waits:
//!
//! | the run is | a [`Store`]'s call runs | an [`AsyncStore`]'s future |
//! | --- | --- | --- |
//! | awaited on a multi-thread Tokio runtime | on the run's thread inside `block_in_place`, which first hands that worker's other tasks to another thread | is awaited |
//! | awaited on a current-thread Tokio runtime (or in a `LocalSet`) | on the runtime's blocking pool (`spawn_blocking`): the runtime's thread goes on with its other tasks | is awaited |
//! | driven by [`RunBuilder::blocking`](crate::RunBuilder::blocking) | on the run's own thread: nothing else waits for it | is awaited, on the run's own runtime |
//! | polled outside any Tokio runtime | on the polling thread | is awaited |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Checkpoint, FlowRecord, Owner, Store, StoreError, StoredFlow};

/// What an [`AsyncStore`] method returns: a boxed future, so that the trait can be used as
/// `dyn AsyncStore`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A store whose I/O is asynchronous: the same contract as [`Store`], method for method (see
/// there for each method's errors), with futures. A network backend (PostgreSQL) implements it,
/// so that a durable run on an async runtime never blocks the runtime's thread on the network.
///
/// A run is given one with [`AnyStore::from_async`] (or an `Arc<dyn AsyncStore>`, which converts
/// by itself):
///
/// ```
/// use std::sync::Arc;
/// use taskflow::prelude::*;
/// use taskflow::store::{AsyncStore, Checkpoint, FlowRecord, MemoryStore, Owner, Store, StoreFuture, StoredFlow};
///
/// /// A store that answers asynchronously (here: a memory store behind a yield).
/// struct Remote(MemoryStore);
///
/// impl AsyncStore for Remote {
///     fn create_flow<'a>(&'a self, flow: &'a FlowRecord) -> StoreFuture<'a, ()> {
///         Box::pin(async move { tokio::task::yield_now().await; self.0.create_flow(flow) })
///     }
///     fn checkpoint<'a>(&'a self, id: &'a str, cp: &'a Checkpoint) -> StoreFuture<'a, ()> {
///         Box::pin(async move { tokio::task::yield_now().await; self.0.checkpoint(id, cp) })
///     }
///     fn load_flow<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredFlow>> {
///         Box::pin(async move { self.0.load_flow(id) })
///     }
///     fn list_flows(&self) -> StoreFuture<'_, Vec<FlowRecord>> {
///         Box::pin(async move { self.0.list_flows() })
///     }
///     fn delete_flow<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
///         Box::pin(async move { self.0.delete_flow(id) })
///     }
///     fn acquire<'a>(&'a self, id: &'a str, owner: &'a Owner, until: u64) -> StoreFuture<'a, StoredFlow> {
///         Box::pin(async move { self.0.acquire(id, owner, until) })
///     }
/// }
///
/// #[task(provides = doubled)]
/// fn double(x: u32) -> u32 { x * 2 }
///
/// flow! { flow Double(x: u32) -> (doubled) { linear [ double ] } }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store: Arc<dyn AsyncStore> = Arc::new(Remote(MemoryStore::new()));
/// let engine = Engine::serial();
/// let out = engine.run(Double, DoubleInputs { x: 21 }).durable(store.clone(), "job-1").await.unwrap();
/// assert_eq!(out.doubled, 42);
/// let again = engine.resume(Double, store.clone(), "job-1").await.unwrap();
/// assert_eq!(again.doubled, 42);
/// let stored = store.load_flow("job-1").await.unwrap().unwrap();
/// assert_eq!(stored.flow.state, FlowState::Success);
/// # });
/// ```
pub trait AsyncStore: Send + Sync {
    /// [`Store::create_flow`], asynchronously.
    fn create_flow<'a>(&'a self, flow: &'a FlowRecord) -> StoreFuture<'a, ()>;
    /// [`Store::checkpoint`], asynchronously: all or nothing.
    fn checkpoint<'a>(
        &'a self,
        flow_id: &'a str,
        checkpoint: &'a Checkpoint,
    ) -> StoreFuture<'a, ()>;
    /// [`Store::create_with`], asynchronously: the new run `flow` with its first checkpoint.
    /// This provided method awaits [`create_flow`](Self::create_flow), then
    /// [`checkpoint`](Self::checkpoint); a store that can, does both in one transaction.
    fn create_with<'a>(
        &'a self,
        flow: &'a FlowRecord,
        first: &'a Checkpoint,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.create_flow(flow).await?;
            self.checkpoint(&flow.id, first).await
        })
    }
    /// [`Store::load_flow`], asynchronously.
    fn load_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, Option<StoredFlow>>;
    /// [`Store::list_flows`], asynchronously.
    fn list_flows(&self) -> StoreFuture<'_, Vec<FlowRecord>>;
    /// [`Store::delete_flow`], asynchronously.
    fn delete_flow<'a>(&'a self, flow_id: &'a str) -> StoreFuture<'a, ()>;
    /// [`Store::acquire`], asynchronously: atomic.
    fn acquire<'a>(
        &'a self,
        flow_id: &'a str,
        owner: &'a Owner,
        until: u64,
    ) -> StoreFuture<'a, StoredFlow>;
}

/// The store of a durable run: a [`Store`] with blocking I/O or an [`AsyncStore`]. A run's
/// writes to either never block the thread that drives it on an async runtime (see the
/// [module](self)).
///
/// Every `Arc` of a store converts into one ([`IntoStore`]), so a run is given a store as
/// `.durable(store.clone(), id)` whichever kind it is.
///
/// ```
/// use std::sync::Arc;
/// use taskflow::store::{AnyStore, IntoStore, MemoryStore, Store};
///
/// let store = Arc::new(MemoryStore::new());
/// let any: AnyStore = store.clone().into_store();
/// assert!(matches!(any, AnyStore::Blocking(_)));
/// let shared: Arc<dyn Store> = store;
/// assert!(matches!(shared.into_store(), AnyStore::Blocking(_)));
/// ```
#[derive(Clone)]
pub enum AnyStore {
    /// A store with blocking I/O.
    Blocking(Arc<dyn Store>),
    /// A store with asynchronous I/O.
    Async(Arc<dyn AsyncStore>),
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnyStore::Blocking(_) => "AnyStore::Blocking(..)",
            AnyStore::Async(_) => "AnyStore::Async(..)",
        })
    }
}

impl AnyStore {
    /// An [`AsyncStore`], as a run's store.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use taskflow::store::{AnyStore, AsyncStore};
    /// fn as_run_store(store: Arc<impl AsyncStore + 'static>) -> AnyStore {
    ///     AnyStore::from_async(store)
    /// }
    /// ```
    pub fn from_async(store: Arc<impl AsyncStore + 'static>) -> Self {
        AnyStore::Async(store)
    }

    /// Runs `call` on a [`Store`] without blocking the runtime when the run is awaited on a
    /// Tokio runtime (`inline` false), on this thread otherwise. On a multi-thread runtime the
    /// call runs here, inside `block_in_place`, which hands this worker's other tasks to another
    /// thread first (no hand-off of the call itself: the run waits for it anyway); on a
    /// current-thread runtime, whose one thread must stay free, it goes to the blocking pool.
    async fn blocking<T: Send + 'static>(
        inline: bool,
        call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !inline {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let call = match in_place(runtime.runtime_flavor(), call) {
                    Ok(result) => return result,
                    Err(call) => call,
                };
                return match runtime.spawn_blocking(call).await {
                    Ok(result) => result,
                    // The store's own panic, as if it had been called here.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => Err(StoreError::Backend {
                        store: "blocking store".into(),
                        source: Box::new(e),
                    }),
                };
            }
        }
        call()
    }

    pub(crate) async fn create_with(
        &self,
        flow: FlowRecord,
        first: Checkpoint,
        inline: bool,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Blocking(store) if inline => store.create_with(&flow, &first),
            AnyStore::Blocking(store) => {
                let store = store.clone();
                Self::blocking(inline, move || store.create_with(&flow, &first)).await
            }
            AnyStore::Async(store) => store.create_with(&flow, &first).await,
        }
    }

    pub(crate) async fn checkpoint(
        &self,
        flow_id: &Arc<str>,
        checkpoint: Checkpoint,
        inline: bool,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Blocking(store) if inline => store.checkpoint(flow_id, &checkpoint),
            AnyStore::Blocking(store) => {
                let (store, id) = (store.clone(), flow_id.clone());
                Self::blocking(inline, move || store.checkpoint(&id, &checkpoint)).await
            }
            AnyStore::Async(store) => store.checkpoint(flow_id, &checkpoint).await,
        }
    }

    pub(crate) async fn acquire(
        &self,
        flow_id: &str,
        owner: &Owner,
        until: u64,
        inline: bool,
    ) -> Result<StoredFlow, StoreError> {
        match self {
            AnyStore::Blocking(store) => {
                let (store, id, owner) = (store.clone(), flow_id.to_owned(), owner.clone());
                Self::blocking(inline, move || store.acquire(&id, &owner, until)).await
            }
            AnyStore::Async(store) => store.acquire(flow_id, owner, until).await,
        }
    }

    pub(crate) async fn load_flow(
        &self,
        flow_id: &str,
        inline: bool,
    ) -> Result<Option<StoredFlow>, StoreError> {
        match self {
            AnyStore::Blocking(store) => {
                let (store, id) = (store.clone(), flow_id.to_owned());
                Self::blocking(inline, move || store.load_flow(&id)).await
            }
            AnyStore::Async(store) => store.load_flow(flow_id).await,
        }
    }
}

/// Runs `call` inside `block_in_place` on a multi-thread runtime's worker (or its `block_on`);
/// hands it back where Tokio does not allow that (a current-thread runtime, a `LocalSet`), for
/// the blocking pool.
fn in_place<T, C: FnOnce() -> T>(flavor: tokio::runtime::RuntimeFlavor, call: C) -> Result<T, C> {
    if flavor != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(call);
    }
    // `block_in_place` refuses (panics, before it runs anything) on a thread of the runtime that
    // is not one of its workers nor its `block_on`; then the call is still here.
    let mut slot = Some(call);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| slot.take().map(|call| call()))
    }));
    match (ran, slot) {
        (Ok(Some(result)), _) => Ok(result),
        (Err(_), Some(call)) => Err(call),
        // The store's own panic, as if it had been called here.
        (Err(panic), None) => std::panic::resume_unwind(panic),
        (Ok(None), _) => unreachable!("the call ran"),
    }
}

/// What a run can be given as its store: every `Arc` of a [`Store`] (`Arc<SqliteStore>`,
/// `Arc<dyn Store>`, ...), an `Arc<dyn AsyncStore>`, or an [`AnyStore`].
pub trait IntoStore {
    /// The store, as a run's store.
    fn into_store(self) -> AnyStore;
}

impl<S: Store + 'static> IntoStore for Arc<S> {
    fn into_store(self) -> AnyStore {
        AnyStore::Blocking(self)
    }
}

impl IntoStore for Arc<dyn Store> {
    fn into_store(self) -> AnyStore {
        AnyStore::Blocking(self)
    }
}

impl IntoStore for Arc<dyn AsyncStore> {
    fn into_store(self) -> AnyStore {
        AnyStore::Async(self)
    }
}

impl IntoStore for AnyStore {
    fn into_store(self) -> AnyStore {
        self
    }
}
