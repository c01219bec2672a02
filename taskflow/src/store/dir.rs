//! A store in a directory: one JSON file per run, rewritten atomically at each checkpoint.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::checksum::{self, sum_of, to_hex, Record};
use super::{
    apply_checkpoint, check_fence, lease, sort_flows, unix_millis, validate_checkpoint,
    validate_flow_id, AtomRecord, Checkpoint, FlowRecord, Owner, RetryRecord, Store, StoreError,
    StoredFlow,
};

/// The largest run file read (1 GiB): far above any real run's, and a bound on what a reader
/// (the `taskflow` command) takes in from a file it did not write.
const MAX_FILE: u64 = 1 << 30;

/// The version of the file format this library writes and the newest it reads: 2, records with
/// checksums (1: without, read as it is).
const FORMAT: u32 = 2;

/// A [`Store`] that keeps each run in its own file, `<flow id>.json`, in one directory.
///
/// Each file holds its format version (`"format": 2`), the flow, its steps and its retry records,
/// as readable JSON, each record with its checksum as its last key (`"sum": "<16 hex digits>"`,
/// see the [module docs](super#checksums)). A write — creating a run or checkpointing it — writes the whole new file to
/// a temporary file of its process (`<flow id>.json.<pid>.tmp`: no two processes ever share one,
/// and writers take turns, see below), fsyncs it, renames it over `<flow id>.json` (creating uses a hard
/// link instead, so an existing run is never replaced) and fsyncs the directory. A crash or a
/// failed write (a full or read-only disk) therefore leaves either the old file or the new one,
/// never a mix; a temporary file left by a crash is ignored.
///
/// Every write (create, checkpoint, delete) holds an exclusive lock on the directory's
/// `.taskflow.lock` file (`File::lock`: `flock` on Unix) for its read-modify-write, so stores
/// opened on one directory by several processes (or several times in one) never lose each
/// other's updates or tear a file. Reads need no lock: a run file is only ever replaced whole. A file written
/// before flows recorded their structure (no `graph` key in its flow) loads with `Value::Null`,
/// and a retry record without a `failure` key (written before controllers' failures were
/// recorded, or whose controller did not fail) with `None`: both keys are optional.
///
/// Loading a record verifies its checksum against the record as read (re-serialized, so a damaged
/// key that dropped an optional field fails it as surely as a damaged value). In format 2 the file
/// has only its four keys and every record its `"sum"`: a record without one is corrupt, not
/// legacy. A format-1 file (written before checksums: no sums) loads as it was and is rewritten
/// in format 2 by the next checkpoint. A later taskflow that adds a field to a record writes a
/// new format (the checksum covers every field).
///
/// A file that does not parse (truncated, edited) or whose record fails its checksum is
/// [`StoreError::Corrupt`] naming the file (and the record: ``record of step `Parent/step` of
/// flow `id` in flow file `…` ``); one written by a newer taskflow is
/// [`StoreError::SchemaTooNew`]. Such a file is never overwritten by a checkpoint. [`Store::list_flows`] lists every readable run and reports each
/// file it cannot read as a `tracing` warning naming it; [`DirStore::scan`] returns those errors.
///
/// ```
/// use taskflow::store::{DirStore, FlowRecord, Store};
///
/// let dir = std::env::temp_dir().join(format!("taskflow-doc-dir-{}", std::process::id()));
/// let store = DirStore::open(&dir).unwrap();
/// let flow = FlowRecord::new("book", "BootVm", "fp", serde_json::json!({ "size_gb": 20 }));
/// store.create_flow(&flow).unwrap();
/// assert!(dir.join(format!("{}.json", flow.id)).is_file());
///
/// // Another process (or a later run) sees it.
/// let again = DirStore::open(&dir).unwrap();
/// assert_eq!(again.load_flow(&flow.id).unwrap().unwrap().flow, flow);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct DirStore {
    root: PathBuf,
    writing: Mutex<()>,
    /// `.taskflow.lock`, locked by every write: writers in other processes wait for it. Opened
    /// (created) by the first write, so that a store only read leaves its directory as it was.
    lock_file: std::sync::OnceLock<File>,
}

/// A write's hold on the directory: the in-process mutex, then the lock file.
struct Writing<'a> {
    _in_process: MutexGuard<'a, ()>,
    file: &'a File,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// What [`DirStore::scan`] found: the runs it could read and an error for each file it could not.
///
/// ```
/// use taskflow::store::{DirStore, FlowRecord, Store, StoreError};
///
/// let dir = std::env::temp_dir().join(format!("taskflow-doc-scan-{}", std::process::id()));
/// let store = DirStore::open(&dir).unwrap();
/// store.create_flow(&FlowRecord::new("book", "Good", "fp", serde_json::json!({}))).unwrap();
/// std::fs::write(dir.join("broken.json"), "{ \"format\": 1, \"fl").unwrap();
///
/// let scan = store.scan().unwrap();
/// assert_eq!(scan.flows[0].flow_name, "Good");
/// assert!(matches!(&scan.errors[..], [StoreError::Corrupt { what, .. }] if what.contains("broken.json")));
/// // `list_flows` lists the readable runs too (and warns about the broken file).
/// assert_eq!(store.list_flows().unwrap().len(), 1);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct DirScan {
    /// The runs that could be read, oldest first.
    pub flows: Vec<FlowRecord>,
    /// One error per run file that could not be read.
    pub errors: Vec<StoreError>,
}

/// A record as a format-2 file holds it: the record's own keys, then `"sum"`, its checksum
/// ([`sum_of`] the record, as 16 hex digits).
#[derive(Serialize)]
struct Sealed<'a, T> {
    #[serde(flatten)]
    record: &'a T,
    sum: String,
}

impl<'a, T: Serialize> Sealed<'a, T> {
    fn new(record: &'a T) -> Self {
        Sealed {
            record,
            sum: to_hex(sum_of(record)),
        }
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: u32,
    flow: Sealed<'a, FlowRecord>,
    atoms: Vec<Sealed<'a, AtomRecord>>,
    retries: Vec<Sealed<'a, RetryRecord>>,
}

/// The keys of a run file; a format-2 file has no other.
const FILE_KEYS: [&str; 4] = ["format", "flow", "atoms", "retries"];

impl DirStore {
    /// Opens the store in directory `path`, creating the directory if needed.
    ///
    /// ```
    /// use taskflow::store::{DirStore, StoreError};
    ///
    /// let dir = std::env::temp_dir().join(format!("taskflow-doc-open-{}", std::process::id()));
    /// assert_eq!(DirStore::open(&dir).unwrap().path(), dir);
    ///
    /// // A file is not a directory:
    /// let file = dir.join("file");
    /// std::fs::write(&file, "").unwrap();
    /// assert!(matches!(DirStore::open(&file), Err(StoreError::Io { .. })));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(&root).map_err(io_at(&root))?;
        if !fs::metadata(&root).map_err(io_at(&root))?.is_dir() {
            return Err(StoreError::Io {
                source: io::Error::other("not a directory"),
                path: root,
            });
        }
        Ok(DirStore {
            root,
            writing: Mutex::new(()),
            lock_file: std::sync::OnceLock::new(),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Every run whose file can be read (oldest first), and an error for each `*.json` file that
    /// cannot. Fails only when the directory itself cannot be read.
    pub fn scan(&self) -> Result<DirScan, StoreError> {
        let mut scan = DirScan {
            flows: Vec::new(),
            errors: Vec::new(),
        };
        for entry in fs::read_dir(&self.root).map_err(io_at(&self.root))? {
            let name = entry.map_err(io_at(&self.root))?.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if validate_flow_id(id).is_err() {
                continue;
            }
            match self.read(id) {
                Ok(Some(stored)) => scan.flows.push(stored.flow),
                Ok(None) => {} // deleted since the directory was listed
                Err(e) => scan.errors.push(e),
            }
        }
        sort_flows(&mut scan.flows);
        scan.errors.sort_by_cached_key(ToString::to_string);
        Ok(scan)
    }

    fn file_path(&self, id: &str) -> PathBuf {
        self.root.join(format!("{id}.json"))
    }

    /// Holds the directory for one write: no other write, in this process or another, runs
    /// until it is dropped.
    fn lock(&self) -> Result<Writing<'_>, StoreError> {
        let in_process = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let path = self.root.join(".taskflow.lock");
        let file = match self.lock_file.get() {
            Some(file) => file,
            None => {
                // Held open read-only (a lock needs no more, and a file open for writing would
                // keep the file system from being remounted read-only).
                let opened = match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        File::options()
                            .create(true)
                            .truncate(false)
                            .write(true)
                            .open(&path)
                            .map_err(io_at(&path))?;
                        File::open(&path).map_err(io_at(&path))?
                    }
                    Err(e) => return Err(StoreError::Io { path, source: e }),
                };
                self.lock_file.get_or_init(|| opened)
            }
        };
        file.lock().map_err(io_at(&path))?;
        Ok(Writing {
            _in_process: in_process,
            file,
        })
    }

    /// The run `id` (a valid id), `None` when its file does not exist. Only a regular file (or a
    /// symlink to one) of at most [`MAX_FILE`] bytes is read: a FIFO or a device under a run's
    /// name would block the reader or never end, so it is refused as corrupt, unopened.
    fn read(&self, id: &str) -> Result<Option<StoredFlow>, StoreError> {
        let path = self.file_path(id);
        let not_found = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let corrupt = |detail: String| StoreError::Corrupt {
            what: format!("flow file `{}`", path.display()),
            detail,
        };
        let kind = match fs::metadata(&path) {
            Ok(meta) => meta.file_type(),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        if !kind.is_file() {
            return Err(corrupt(
                "not a regular file (a FIFO, a device, a socket or a directory): not read".into(),
            ));
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_at(&path))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(corrupt(format!(
                "larger than {MAX_FILE} bytes, the most a run file is read"
            )));
        }
        parse(&path, id, &bytes).map(Some)
    }

    /// Writes `stored` as its run's file: temp file, fsync, then rename over the old file (or,
    /// with `create`, a hard link that fails if the run exists), then fsync of the directory.
    fn write(&self, stored: &StoredFlow, create: bool) -> Result<(), StoreError> {
        let id = &stored.flow.id;
        let bytes = serde_json::to_vec_pretty(&FileOut {
            format: FORMAT,
            flow: Sealed::new(&stored.flow),
            atoms: stored.atoms.iter().map(Sealed::new).collect(),
            retries: stored.retries.iter().map(Sealed::new).collect(),
        })
        .map_err(|e| StoreError::Invalid {
            what: format!("flow `{id}`"),
            detail: e.to_string(),
        })?;
        // This process's own: another process never writes it, and this process's writers take
        // turns (the lock).
        let tmp = self
            .root
            .join(format!("{id}.json.{}.tmp", std::process::id()));
        if let Err(e) = write_synced(&tmp, &bytes) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io {
                path: tmp,
                source: e,
            });
        }
        let dest = self.file_path(id);
        let placed = if create {
            let linked = fs::hard_link(&tmp, &dest);
            let _ = fs::remove_file(&tmp);
            linked
        } else {
            fs::rename(&tmp, &dest).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })
        };
        match placed {
            Ok(()) => sync_dir(&self.root),
            Err(e) if create && e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StoreError::AlreadyExists {
                    flow_id: id.clone(),
                })
            }
            Err(e) => Err(StoreError::Io {
                path: dest,
                source: e,
            }),
        }
    }
}

/// Reads a run file's content (`id`: the run its name says). Format 1 (before checksums) is read
/// as it was written; in format 2 the file has exactly [`FILE_KEYS`], every record has its
/// `"sum"` and each is verified against the record as read (see [`open_record`]).
fn parse(path: &Path, id: &str, bytes: &[u8]) -> Result<StoredFlow, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: format!("flow file `{}`", path.display()),
        detail,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let format = value
        .get("format")
        .and_then(Value::as_u64)
        .ok_or_else(|| corrupt("no `format` version number".into()))?;
    if format > u64::from(FORMAT) {
        return Err(StoreError::SchemaTooNew {
            found: u32::try_from(format).unwrap_or(u32::MAX),
            supported: FORMAT,
        });
    }
    if format < 1 {
        return Err(corrupt(format!("unknown format version {format}")));
    }
    let sealed = format >= 2;
    let Value::Object(mut file) = value else {
        unreachable!("a value with a `format` key is an object")
    };
    if sealed {
        if let Some(key) = file.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
            return Err(corrupt(format!("unknown key `{key}`")));
        }
    }
    let mut take = |key: &str| {
        file.remove(key)
            .ok_or_else(|| corrupt(format!("missing field `{key}`")))
    };
    let (flow, atoms, retries) = (take("flow")?, take("atoms")?, take("retries")?);
    let list = |value: Value, key: &str| match value {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!("`{key}` is not a list: {other}"))),
    };
    let (atoms, retries) = (list(atoms, "atoms")?, list(retries, "retries")?);
    let record = Opening { path, id, sealed };
    let flow: FlowRecord = record.open(flow, "flow", |_| Record::Flow)?;
    if flow.id != id {
        return Err(corrupt(format!("it holds flow `{}`, not `{id}`", flow.id)));
    }
    let atoms = atoms
        .into_iter()
        .enumerate()
        .map(|(i, atom)| {
            let place = match atom.get("name").and_then(Value::as_str) {
                Some(name) => format!("atoms[{i}] (step `{name}`)"),
                None => format!("atoms[{i}]"),
            };
            record.open(atom, &place, |a: &AtomRecord| Record::Step(&a.name))
        })
        .collect::<Result<_, _>>()?;
    let retries = retries
        .into_iter()
        .enumerate()
        .map(|(i, retry)| {
            record.open(retry, &format!("retries[{i}]"), |r: &RetryRecord| {
                Record::Retry(&r.flow, r.scope)
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(StoredFlow {
        flow,
        atoms,
        retries,
    })
}

/// How the records of one file are read.
struct Opening<'a> {
    path: &'a Path,
    /// The run the file's name says.
    id: &'a str,
    /// Whether every record must carry its checksum (format 2).
    sealed: bool,
}

impl Opening<'_> {
    /// One record of the file (at `place`, like `atoms[2]`): its `"sum"` key taken out, the rest
    /// read as a `T`, and the sum checked against [`sum_of`] the record as read — so a damaged
    /// key that made a field go missing (an optional field would read as its default) or a
    /// damaged value fails it as surely as a damaged sum. A record without a sum is accepted
    /// only in a format-1 file; a format-1 record that has one (a damaged format number) is
    /// verified too.
    fn open<T: DeserializeOwned + Serialize>(
        &self,
        value: Value,
        place: &str,
        names: impl Fn(&T) -> Record<'_>,
    ) -> Result<T, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            what: format!("flow file `{}`", self.path.display()),
            detail: format!("{place}: {detail}"),
        };
        let mut value = value;
        let sum = match value.as_object_mut().and_then(|o| o.remove("sum")) {
            Some(Value::String(sum)) => Some(sum),
            Some(other) => return Err(corrupt(format!("its `sum` is not a string: {other}"))),
            None => None,
        };
        let record: T = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let what = || {
            format!(
                "{} in flow file `{}`",
                names(&record).describe(self.id),
                self.path.display()
            )
        };
        match sum {
            Some(sum) => checksum::verify(&sum, sum_of(&record), what)?,
            None if self.sealed => return Err(checksum::missing(what())),
            None => {}
        }
        Ok(record)
    }
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a rename or link in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

impl Store for DirStore {
    fn create_flow(&self, flow: &FlowRecord) -> Result<(), StoreError> {
        validate_flow_id(&flow.id)?;
        let _writing = self.lock()?;
        let stored = StoredFlow {
            flow: flow.clone(),
            atoms: Vec::new(),
            retries: Vec::new(),
        };
        self.write(&stored, true)
    }

    fn create_with(&self, flow: &FlowRecord, first: &Checkpoint) -> Result<(), StoreError> {
        // The run's file is written once, as its first checkpoint leaves it.
        let stored = super::created_with(flow, first)?;
        let _writing = self.lock()?;
        self.write(&stored, true)
    }

    fn checkpoint(&self, flow_id: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let not_found = || StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        };
        validate_flow_id(flow_id).map_err(|_| not_found())?;
        validate_checkpoint(checkpoint)?;
        let _writing = self.lock()?;
        let mut stored = self.read(flow_id)?.ok_or_else(not_found)?;
        let now = unix_millis(SystemTime::now());
        check_fence(&stored.flow, checkpoint, now)?;
        apply_checkpoint(&mut stored, checkpoint, now);
        self.write(&stored, false)
    }

    fn load_flow(&self, flow_id: &str) -> Result<Option<StoredFlow>, StoreError> {
        if validate_flow_id(flow_id).is_err() {
            return Ok(None);
        }
        self.read(flow_id)
    }

    /// Every readable run; a file that cannot be read is reported as a warning naming it (see
    /// [`DirStore::scan`] for the errors themselves) and does not hide the others.
    fn list_flows(&self) -> Result<Vec<FlowRecord>, StoreError> {
        let scan = self.scan()?;
        for error in &scan.errors {
            tracing::warn!(%error, "taskflow: a run file of the directory store cannot be read");
        }
        Ok(scan.flows)
    }

    fn delete_flow(&self, flow_id: &str) -> Result<(), StoreError> {
        let not_found = || StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        };
        validate_flow_id(flow_id).map_err(|_| not_found())?;
        let _writing = self.lock()?;
        let path = self.file_path(flow_id);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    fn acquire(&self, flow_id: &str, owner: &Owner, until: u64) -> Result<StoredFlow, StoreError> {
        let not_found = || StoreError::NotFound {
            flow_id: flow_id.to_owned(),
        };
        validate_flow_id(flow_id).map_err(|_| not_found())?;
        let _writing = self.lock()?;
        let mut stored = self.read(flow_id)?.ok_or_else(not_found)?;
        let now = unix_millis(SystemTime::now());
        if lease::take(&mut stored.flow, owner, until, now)? {
            stored.flow.updated_at = now;
            self.write(&stored, false)?;
        }
        Ok(stored)
    }
}
