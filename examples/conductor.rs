//! Conductors sharing the jobs of a PostgreSQL job board, and one of them killed mid-flow.
//!
//! ```text
//! cargo run --example conductor -- demo          # all of the below in one command
//! cargo run --example conductor -- post 6        # post 6 jobs
//! cargo run --example conductor -- work          # run a conductor (Ctrl-C... or kill it)
//! cargo run --example conductor -- jobs          # the job table
//! ```
//!
//! The database is `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), the
//! store's schema `TASKFLOW_SCHEMA` (default `taskflow_example`). `demo` uses a fresh schema of
//! its own, starts two conductor processes, posts 6 jobs, kills one conductor with SIGKILL while
//! it runs a job, and waits for the other to finish every job — the killed one's too, resumed
//! from its last checkpoint — then prints the job table and drops its schema.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskflow::conductor::{Conductor, ConductorOptions};
use taskflow::prelude::*;
use taskflow::store::{AsyncStore, JobBoard, JobState, NewJob, PostgresOptions, PostgresStore};
use taskflow::StepState;

fn say(what: String) {
    println!("[conductor {}] {what}", std::process::id());
}

#[task(provides = reservation)]
fn reserve(order: u32) -> String {
    say(format!("order {order}: reserve"));
    std::thread::sleep(Duration::from_millis(300));
    format!("res-{order}")
}

#[task(provides = machine)]
fn build(order: u32, reservation: &str) -> String {
    say(format!("order {order}: build on {reservation} (1.5 s)"));
    std::thread::sleep(Duration::from_millis(1500));
    format!("vm-{order}")
}

#[task(provides = announced)]
fn announce(order: u32, machine: &str) -> bool {
    say(format!("order {order}: {machine} is ready"));
    true
}

flow! {
    flow Provision(order: u32) -> (announced) {
        linear [ reserve, build, announce ]
    }
}

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn store(schema: &str) -> Arc<PostgresStore> {
    let options = PostgresOptions {
        schema: schema.into(),
        ..Default::default()
    };
    match PostgresStore::connect_with(&url(), options).await {
        Ok(store) => Arc::new(store),
        Err(e) => {
            eprintln!("error: {e} (set DATABASE_URL to a PostgreSQL server)");
            std::process::exit(1);
        }
    }
}

fn conductor(store: Arc<PostgresStore>) -> Conductor {
    Conductor::new(
        store,
        Engine::serial().lease(Duration::from_secs(2), Duration::from_millis(500)),
    )
    .options(ConductorOptions {
        concurrency: 2,
        claim_hold: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(500),
        poll_every: Duration::from_millis(100),
        ..Default::default()
    })
    .register(|| Provision)
}

async fn post(board: &JobBoard, n: u32) {
    for order in 1..=n {
        let job = NewJob::of::<Provision>(&ProvisionInputs { order })
            .unwrap()
            .idempotency_key(format!("order-{order}"));
        board.post(&job).await.unwrap();
    }
    println!("posted {n} jobs");
}

async fn print_jobs(board: &JobBoard) {
    println!(
        "{:<4} {:<10} {:<8} {:<8} {:<9}",
        "JOB", "STATE", "OUTCOME", "CLAIMS", "TAKEOVERS"
    );
    for job in board.jobs().await.unwrap().into_iter().rev() {
        let outcome = job.outcome.map_or("-".to_owned(), |o| o.to_string());
        println!(
            "{:<4} {:<10} {:<8} {:<8} {}",
            job.id.to_string(),
            job.state.to_string(),
            outcome,
            job.claims,
            job.takeovers
        );
    }
}

fn spawn_worker(schema: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("work")
        .env("TASKFLOW_SCHEMA", schema)
        .stdout(Stdio::inherit())
        .spawn()
        .expect("starting a conductor process")
}

async fn demo() {
    let schema = format!("taskflow_demo_{}", std::process::id());
    let store = store(&schema).await;
    let board = JobBoard::new(store.clone());
    let mut a = spawn_worker(&schema);
    let mut b = spawn_worker(&schema);
    post(&board, 6).await;
    // Wait until conductor `a` is in the middle of its jobs — as many as it runs at once (so it
    // claims no other now), each past its first step, recorded SUCCESS — then kill it.
    let victim = a.id();
    let start = Instant::now();
    loop {
        let mut held = 0;
        let mut past_first = 0;
        for job in board.jobs().await.unwrap() {
            if job.state == JobState::Claimed && job.owner.as_ref().is_some_and(|o| o.pid == victim)
            {
                held += 1;
                let run = store.load_flow(&job.id.run_id()).await.unwrap();
                let reserved = run
                    .as_ref()
                    .and_then(|r| r.atom("reserve"))
                    .map(|a| a.state);
                if reserved == Some(StepState::Success) {
                    past_first += 1;
                }
            }
        }
        if held == 2 && past_first == 2 {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            eprintln!("conductor {victim} never got past the first step of a job");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status();
    let _ = a.wait();
    println!("killed conductor {victim} (SIGKILL) in the middle of a job");
    let start = Instant::now();
    loop {
        let jobs = board.jobs().await.unwrap();
        if jobs.iter().all(|j| j.state.is_final()) {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            eprintln!("the jobs did not end in 60 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = b.kill();
    let _ = b.wait();
    print_jobs(&board).await;
    let jobs = board.jobs().await.unwrap();
    let done = jobs
        .iter()
        .filter(|j| j.state == JobState::Done && j.outcome == Some(FlowState::Success))
        .count();
    let takeovers: u32 = jobs.iter().map(|j| j.takeovers).sum();
    println!(
        "{done} of {} jobs DONE, {takeovers} taken over from the killed conductor",
        jobs.len()
    );
    drop(board);
    drop(store);
    let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let _ = client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await;
    if done != jobs.len() {
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let schema = std::env::var("TASKFLOW_SCHEMA").unwrap_or_else(|_| "taskflow_example".into());
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo"] => demo().await,
        ["post", n] => {
            let n: u32 = n.parse().unwrap_or_else(|_| {
                eprintln!("error: `{n}` is not a number of jobs");
                std::process::exit(2)
            });
            post(&JobBoard::new(store(&schema).await), n).await;
        }
        ["work"] => {
            let store = store(&schema).await;
            say("claiming jobs".into());
            let report = conductor(store).run(std::future::pending::<()>()).await;
            say(format!("stopped: {report:?}"));
        }
        ["jobs"] => print_jobs(&JobBoard::new(store(&schema).await)).await,
        _ => {
            eprintln!("usage: conductor (demo | post <N> | work | jobs)");
            std::process::exit(2);
        }
    }
}
