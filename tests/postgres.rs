//! What only `PostgresStore` has: its schema (created, migrated by processes that start at once,
//! refused when it is not ours or is newer) and durable runs through it as an `AsyncStore`. The
//! `Store` contract itself runs on PostgreSQL with the other backends (tests/store.rs,
//! tests/leases.rs). Needs the server at `DATABASE_URL` (`.ci/run` sets it).
mod common;
use common::{database_url, PgStore};

use std::sync::Arc;
use std::time::Duration;

use taskflow::prelude::*;
use taskflow::store::{AsyncStore, PostgresOptions, PostgresStore, Store, StoreError};
use taskflow::StepState;

fn schema(tag: &str) -> String {
    format!("tfpg_{tag}_{}", std::process::id())
}

fn connect(rt: &tokio::runtime::Runtime, schema: &str) -> Result<PostgresStore, StoreError> {
    let options = PostgresOptions {
        schema: schema.into(),
        ..Default::default()
    };
    rt.block_on(PostgresStore::connect_with(&database_url(), options))
}

fn query_one(store: &PgStore, sql: &str) -> String {
    let url = database_url();
    store.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = client.query_one(sql, &[]).await.unwrap();
        row.get::<_, String>(0)
    })
}

#[test]
fn processes_starting_at_once_create_one_schema_once() {
    let name = schema("race");
    let guard = PgStore::in_schema(&name);
    guard
        .sql(&format!("DROP SCHEMA \"{name}\" CASCADE"))
        .unwrap();
    // Eight stores connect to the missing schema at once, each on its own runtime and thread
    // (as eight processes would): each one creates or finds the same tables.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let name = name.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                connect(&rt, &name).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(
        query_one(
            &guard,
            &format!("SELECT count(*)::text FROM \"{name}\".taskflow_schema")
        ),
        "1"
    );
    assert_eq!(
        query_one(
            &guard,
            &format!("SELECT version::text FROM \"{name}\".taskflow_schema")
        ),
        PostgresStore::SCHEMA_VERSION.to_string()
    );
}

#[test]
fn a_schema_of_other_tables_is_refused_and_left_alone() {
    let name = schema("foreign");
    let guard = PgStore::in_schema(&name);
    guard
        .sql(&format!(
            "DROP SCHEMA \"{name}\" CASCADE; CREATE SCHEMA \"{name}\"; \
             CREATE TABLE \"{name}\".notes (body TEXT); \
             CREATE TABLE \"{name}\".schema_version (version INTEGER); \
             INSERT INTO \"{name}\".notes VALUES ('keep me')"
        ))
        .unwrap();
    let err = connect(&guard.rt, &name).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Invalid { .. }), "{text}");
    assert!(text.contains(&format!("schema `{name}`")), "{text}");
    assert!(
        text.contains("`notes`") && text.contains("`schema_version`"),
        "{text}"
    );
    assert_eq!(
        query_one(&guard, &format!("SELECT body FROM \"{name}\".notes")),
        "keep me"
    );
    assert_eq!(
        query_one(
            &guard,
            &format!("SELECT count(*)::text FROM pg_tables WHERE schemaname = '{name}'")
        ),
        "2",
        "nothing was created beside the user's tables"
    );
}

#[test]
fn a_store_of_a_newer_taskflow_is_refused_and_left_alone() {
    let store = PgStore::new();
    let s = store.schema.clone();
    store
        .sql(&format!("UPDATE \"{s}\".taskflow_schema SET version = 99"))
        .unwrap();
    let err = connect(&store.rt, &s).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew { found: 99, supported } if supported == PostgresStore::SCHEMA_VERSION
        ),
        "{err}"
    );
    assert_eq!(
        query_one(
            &store,
            &format!("SELECT version::text FROM \"{s}\".taskflow_schema")
        ),
        "99"
    );
}

#[test]
fn a_bad_url_or_schema_name_is_a_clear_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(PostgresStore::connect("postgres://host:notaport/db"))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid PostgreSQL connection string"),
        "{err}"
    );
    let options = PostgresOptions {
        schema: "Robert'); DROP TABLE".into(),
        ..Default::default()
    };
    let err = rt
        .block_on(PostgresStore::connect_with(&database_url(), options))
        .unwrap_err();
    assert!(err.to_string().contains("schema name"), "{err}");
}

#[test]
fn an_unreachable_server_is_a_backend_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let err = rt
        .block_on(PostgresStore::connect(
            "postgres://postgres@127.0.0.1:9/test?connect_timeout=2",
        ))
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
    assert!(err.to_string().starts_with("PostgreSQL error"), "{err}");
}

#[derive(Debug, thiserror::Error)]
#[error("attach failed")]
struct AttachFailed;

#[task(provides = volume)]
fn create(size: u32) -> u32 {
    size * 10
}

#[task(provides = attached)]
fn attach(volume: u32, fail: bool) -> Result<u32, AttachFailed> {
    if fail {
        Err(AttachFailed)
    } else {
        Ok(volume + 1)
    }
}

flow! {
    flow Provision(size: u32, fail: bool) -> (attached) {
        linear [ create, attach ]
    }
}

#[test]
fn durable_runs_on_both_engines_end_and_resume_through_postgres() {
    let pg = PgStore::new();
    let store: Arc<dyn AsyncStore> = pg.store.clone();
    pg.rt.block_on(async {
        for (engine, id) in [
            (Engine::serial(), "serial"),
            (Engine::parallel(), "parallel"),
        ] {
            let out = engine
                .run(
                    Provision,
                    ProvisionInputs {
                        size: 4,
                        fail: false,
                    },
                )
                .durable(store.clone(), id)
                .await
                .unwrap();
            assert_eq!(out.attached, 41);
            // A finished run resumes to its stored outputs without running anything.
            let again = engine.resume(Provision, store.clone(), id).await.unwrap();
            assert_eq!(again.attached, 41);
            let stored = store.load_flow(id).await.unwrap().unwrap();
            assert_eq!(stored.flow.state, FlowState::Success);
            assert_eq!(stored.flow.lease, None, "an ended run releases its lease");
            assert_eq!(stored.atoms.len(), 2);

            let failed = format!("{id}-failed");
            let err = engine
                .run(
                    Provision,
                    ProvisionInputs {
                        size: 4,
                        fail: true,
                    },
                )
                .durable(store.clone(), failed.as_str())
                .await;
            assert!(err.is_err());
            let stored = store.load_flow(&failed).await.unwrap().unwrap();
            assert_eq!(stored.flow.state, FlowState::Reverted);
            let attach = stored.atom("attach").unwrap();
            assert_eq!(attach.state, StepState::Reverted);
            assert_eq!(attach.failure.as_ref().unwrap().message, "attach failed");
        }
    });
    // The blocking view of the same store lists the four runs.
    assert_eq!(pg.list_flows().unwrap().len(), 4);
}

#[test]
fn a_version_1_store_gets_the_job_board_when_connected_and_keeps_its_runs() {
    let pg = PgStore::new();
    let s = pg.schema.clone();
    let flow = taskflow::store::FlowRecord::new("book", "Flow", "fp", serde_json::json!({"a": 1}));
    pg.create_flow(&flow).unwrap();
    // What a taskflow of schema version 1 left: no `jobs` table.
    pg.sql(&format!(
        "DROP TABLE \"{s}\".jobs; UPDATE \"{s}\".taskflow_schema SET version = 1"
    ))
    .unwrap();
    let again = connect(&pg.rt, &s).unwrap();
    assert_eq!(
        query_one(
            &pg,
            &format!("SELECT version::text FROM \"{s}\".taskflow_schema")
        ),
        "2"
    );
    assert_eq!(
        query_one(&pg, &format!("SELECT count(*)::text FROM \"{s}\".jobs")),
        "0"
    );
    let stored = pg.rt.block_on(again.load_flow(&flow.id)).unwrap().unwrap();
    assert_eq!(stored.flow, flow);
}

#[test]
fn connections_opened_for_another_runtime_answer_while_that_runtime_is_idle() {
    // The lease keeper renews leases on a runtime of its own, which sits idle between
    // renewals: a connection the pool opened for it must not depend on it being polled.
    let pg = PgStore::new();
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    idle.block_on(four_loads(pg.store.clone()));
    // `idle` is alive but nobody polls it. Every pooled connection must still answer.
    pg.rt.block_on(async {
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            for _ in 0..3 {
                four_loads(pg.store.clone()).await;
            }
        })
        .await;
        assert!(
            answered.is_ok(),
            "a pooled connection did not answer in 10 s"
        );
    });
    drop(idle);
}

/// Four loads of a missing run at once, each a task of the current runtime (so the pool opens
/// connections for them there when it has none idle).
async fn four_loads(store: Arc<PostgresStore>) {
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.load_flow("none").await })
        })
        .collect();
    for loaded in loads {
        assert!(loaded.await.unwrap().unwrap().is_none());
    }
}

/// A TCP proxy to the server at `DATABASE_URL` that, once armed, passes on nothing more of what
/// its client sends from the first `COMMIT` message on (what comes before it in the same write
/// still goes through): the client seems paused just before it commits
/// (the server sees a session idle inside its transaction), while what the server sends still
/// reaches the client. Dropping it closes the connection it holds (the server then rolls the
/// transaction back), so that a test that fails does not leave it holding locks.
struct Withholding {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    held: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Withholding {
    fn start(host: String, upstream: u16) -> Withholding {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held: Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (is_armed, holding) = (armed.clone(), held.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = std::net::TcpStream::connect((host.as_str(), upstream)) else {
                    continue;
                };
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
                let (armed, holding) = (is_armed.clone(), holding.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match client.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        // The `COMMIT` query message: 'Q', its length, the text. A client
                        // that pipelines its transaction sends it in one write with the
                        // statements before it, which do reach the server.
                        let commit = buf[..n].windows(6).position(|w| w == b"COMMIT");
                        if let (true, Some(at)) = (armed.load(Ordering::SeqCst), commit) {
                            let _ = server.write_all(&buf[..at.saturating_sub(5)]);
                            // Send nothing more; the connection stays open until the drop.
                            holding.lock().unwrap().push(server);
                            return;
                        }
                        if server.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Withholding { port, armed, held }
    }

    fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Withholding {
    fn drop(&mut self) {
        for server in self.held.lock().unwrap().drain(..) {
            let _ = server.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_client_paused_inside_a_transaction_does_not_hold_its_locks_past_the_idle_timeout() {
    // Store `a` is paused (its COMMIT withheld) while it creates a run, holding the new row's
    // key; store `b` creating the same run waits for that transaction. The server ends `a`'s
    // session once it has been idle in its transaction for `a`'s timeout, and `b` goes on. (A
    // conductor paused while it creates or takes over a run held up the conductor taking its job
    // over for as long as it stayed paused: seen in tests/chaos.rs.)
    let b = PgStore::new();
    let config: tokio_postgres::Config = database_url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("this test needs a DATABASE_URL over TCP, not {other:?}"),
    };
    let proxy = Withholding::start(host, config.get_ports().first().copied().unwrap_or(5432));
    let mut url = format!(
        "host=127.0.0.1 port={} user={} dbname={}",
        proxy.port,
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres")
    );
    if let Some(password) = config.get_password() {
        url.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
    }
    let options = PostgresOptions {
        schema: b.schema.clone(),
        pool_size: 1,
        idle_in_transaction_timeout: Some(Duration::from_millis(500)),
    };
    let a = Arc::new(
        b.rt.block_on(PostgresStore::connect_with(&url, options))
            .unwrap(),
    );
    proxy.arm();
    let record = taskflow::store::FlowRecord::new("paused", "Paused", "fp", serde_json::json!({}));
    let paused = {
        let (a, record) = (a.clone(), record.clone());
        b.rt.spawn(async move { a.create_flow(&record).await })
    };
    b.rt.block_on(async {
        // `a`'s INSERT is in and its COMMIT withheld before `b` tries.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let created =
            tokio::time::timeout(Duration::from_secs(10), b.store.create_flow(&record)).await;
        let created = created.expect("the create waited for the paused client's transaction");
        created.unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), paused)
            .await
            .expect("the paused client heard that its session ended")
            .unwrap();
        assert!(
            matches!(ended, Err(StoreError::Backend { .. })),
            "the paused client's create: {ended:?}"
        );
        let stored = b.store.load_flow(&record.id).await.unwrap().unwrap();
        assert_eq!(stored.flow.id, record.id);
    });
}

#[test]
fn a_run_and_its_first_checkpoint_are_one_transaction() {
    use taskflow::store::{AtomRecord, Checkpoint, FlowRecord, LeaseUpdate, Owner};
    let pg = PgStore::new();
    // The server refuses the first step's row: the run's own row goes with it.
    pg.sql(&format!(
        "CREATE FUNCTION \"{s}\".refuse() RETURNS trigger AS $$ BEGIN \
           RAISE EXCEPTION 'no steps today'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse BEFORE INSERT ON \"{s}\".atoms \
           FOR EACH ROW EXECUTE FUNCTION \"{s}\".refuse();",
        s = pg.schema
    ))
    .unwrap();
    let mut run = FlowRecord::new("book", "Flow", "fp", serde_json::json!({"x": 1}))
        .with_graph(serde_json::json!({"steps": ["a"]}));
    let fence = run.lease_to(&Owner::current(), u64::MAX / 2);
    let first = Checkpoint {
        flow_state: Some(FlowState::Running),
        atoms: vec![AtomRecord::new("a")],
        fence: Some(fence),
        lease: LeaseUpdate::Keep,
        ..Checkpoint::default()
    };
    let err = pg.create_with(&run, &first).unwrap_err();
    assert!(err.to_string().contains("no steps today"), "{err}");
    assert!(pg.load_flow(&run.id).unwrap().is_none(), "nothing recorded");
    assert_eq!(
        query_one(
            &pg,
            &format!("SELECT count(*)::text FROM \"{}\".graphs", pg.schema)
        ),
        "0"
    );
    // The connection it used is usable again, and a run without the trigger is recorded.
    pg.sql(&format!("DROP TRIGGER refuse ON \"{}\".atoms", pg.schema))
        .unwrap();
    pg.create_with(&run, &first).unwrap();
    assert_eq!(pg.load_flow(&run.id).unwrap().unwrap().atoms.len(), 1);
}
