//! The examples behave as documented: the README's main example, without arguments, runs once to
//! success and once failing at `configure`, rolled back (volume detached, server deleted, nothing
//! left), and exits 0; with `--fail-at configure` it runs only the failing run and exits 1 with
//! the error;
//! `resume` finishes a deployment whose process was killed, running no SUCCESS step again;
//! `orphans` leaves no resource of a crashed provisioning behind;
//! `conductor demo` finishes every job on PostgreSQL (`DATABASE_URL`) although one of its two
//! conductors is killed mid-job, running again only the steps that were not recorded SUCCESS.

use std::process::{Command, Output};

fn run_example(args: &[&str]) -> Output {
    run("boot_vm", args)
}

/// `cargo run --quiet --example <example> -- <args>`.
fn run(example: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", example, "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs")
}

/// The checks of a run of `BootVm` with `configure` failing, in the example's `stdout`: the
/// steps that ran are undone newest first, and nothing is left.
fn assert_rolled_back_at_configure(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{stdout}"))
    };
    assert!(at("run    configure") < at("undo   attach_volume: detached"));
    assert!(
        at("undo   attach_volume: detached") < at("undo   launch_server: deleted server srv-42")
    );
    assert!(stdout.contains("flow ended REVERTED"), "{stdout}");
    assert!(stdout.contains("resources left behind: []"), "{stdout}");
}

#[test]
fn boot_vm_without_arguments_succeeds_then_shows_a_rollback_and_exits_0() {
    let out = run_example(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    // The failing run is the demo's point, not an error of the program.
    assert!(!stderr.contains("error"), "{stderr}");
    // First a run to success, then one failing at configure in a new cloud.
    let second = stdout
        .find("with `configure` failing:")
        .unwrap_or_else(|| panic!("no failing run in:\n{stdout}"));
    let (succeeded, failed) = stdout.split_at(second);
    assert!(
        succeeded.contains("done: server srv-42 with volume vol-7"),
        "{stdout}"
    );
    assert!(
        succeeded.contains(r#"resources: ["server running debian-12", "20 GB volume on srv-42"]"#),
        "{stdout}"
    );
    assert!(!succeeded.contains("undo"), "{stdout}");
    assert!(!failed.contains("done:"), "{stdout}");
    assert!(
        failed.contains("step `configure` failed: cloud error"),
        "{stdout}"
    );
    assert_rolled_back_at_configure(failed);
    assert!(failed.contains("no resource is left"), "{stdout}");
    // And where to see the failing exit.
    assert!(
        stdout.contains("cargo run --example boot_vm -- --fail-at configure"),
        "{stdout}"
    );
}

#[test]
fn boot_vm_fail_at_configure_rolls_back_and_exits_1() {
    let failed = run_example(&["--fail-at", "configure"]);
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stdout.contains("done:"), "{stdout}");
    assert_rolled_back_at_configure(&stdout);
    assert!(
        stderr.contains("error: step `configure` failed"),
        "{stderr}"
    );
}

#[test]
fn boot_vm_rejects_a_bad_argument_with_exit_2() {
    let usage = run_example(&["--fail-at", "nowhere"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("no such step"));
    let usage = run_example(&["--fail-at"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: boot_vm"));
}

/// The example's stdout, after checking that it exited 0.
fn succeeded(example: &str) -> String {
    let out = run(example, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{example} failed: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The first line containing `needle`, trimmed.
fn line_with<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout
        .lines()
        .map(str::trim)
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with `{needle}` in:\n{stdout}"))
}

#[test]
fn resume_finishes_a_killed_deployment_without_rerunning_succeeded_steps() {
    let stdout = succeeded("resume");
    // Killed while start_instances ran, after the first two steps were recorded SUCCESS; the
    // step not started yet is recorded PENDING (every step is, from the start).
    let killed = line_with(&stdout, "parent: killed child 1");
    assert!(killed.contains("signal: 9"), "{stdout}");
    assert!(
        killed.ends_with(
            "the store says: fetch_release SUCCESS, migrate_database SUCCESS, start_instances \
             RUNNING, switch_traffic PENDING"
        ),
        "{stdout}"
    );
    // The second process ran only what was left.
    let (before, after) = stdout.split_at(stdout.find("parent: killed child 1").unwrap());
    assert!(
        before.contains("migrate_database: applying migration 42"),
        "{stdout}"
    );
    for step in ["fetch_release:", "migrate_database:"] {
        assert!(!after.contains(step), "{step} ran again:\n{stdout}");
    }
    assert!(
        after.contains("resuming run deploy-shop-api from flows.db"),
        "{stdout}"
    );
    assert!(
        after.contains(
            "resumed: shop-api 2.4.1 is live at https://shop-api.example/ on 3 instances"
        ),
        "{stdout}"
    );
    // The store's view, and which process ran what.
    assert!(
        stdout.contains("the store's record of run deploy-shop-api: SUCCESS"),
        "{stdout}"
    );
    // A row of the table, its columns separated by one space.
    let row = |step: &str| {
        let line = stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{step} ")));
        let line = line.unwrap_or_else(|| panic!("no row for {step} in:\n{stdout}"));
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(
        row("fetch_release"),
        "fetch_release SUCCESS 1 child 1 (killed)"
    );
    assert_eq!(
        row("migrate_database"),
        "migrate_database SUCCESS 1 child 1 (killed)"
    );
    assert!(
        row("start_instances").ends_with("SUCCESS 1 child 1 (killed), child 2"),
        "{stdout}"
    );
    assert_eq!(row("switch_traffic"), "switch_traffic SUCCESS 1 child 2");
    assert!(
        stdout.contains(
            r#"SUCCESS before the kill: ["fetch_release", "migrate_database"]; of those, ran again: []"#
        ),
        "{stdout}"
    );
}

#[test]
fn orphans_reverts_what_the_crashed_process_created() {
    let stdout = succeeded("orphans");
    // What the crashed process left: a port, a volume and a server.
    let crashed = line_with(&stdout, "parent: child 1 died");
    assert!(crashed.contains("signal: 9"), "{stdout}");
    let list = |line: &str| -> Vec<String> {
        let inner = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
        inner
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_matches('"').to_owned())
            .collect()
    };
    let orphans = list(crashed);
    let kinds: Vec<&str> = orphans
        .iter()
        .map(|id| id.split('-').next().unwrap())
        .collect();
    assert_eq!(kinds, ["port", "srv", "vol"], "{stdout}");
    // The resumed run failed for good, and its reverts, in another process, deleted each of them.
    assert!(
        stdout.contains(
            "resumed: the flow ended REVERTED: step `assign_floating_ip` failed: quota exceeded"
        ),
        "{stdout}"
    );
    let pid = |line: &str, prefix: &str| -> String {
        let at = line.find(prefix).unwrap() + prefix.len();
        line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    };
    for id in &orphans {
        let undo = line_with(&stdout, &format!("deleted {id} "));
        assert_ne!(pid(undo, "[pid "), pid(undo, "created by pid "), "{undo}");
    }
    assert!(stdout.contains("run provision-web-1: REVERTED"), "{stdout}");
    assert_eq!(
        list(line_with(&stdout, "resources left behind:")),
        Vec::<String>::new()
    );
    // Without the resume, the crashed process's resources would be left.
    assert_eq!(
        list(line_with(
            &stdout,
            "without the durable resume, left behind:"
        )),
        orphans
    );
}

#[test]
fn conductor_demo_finishes_the_killed_conductors_jobs_elsewhere() {
    let out = run("conductor", &["demo"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("6 of 6 jobs DONE"), "{stdout}");
    assert!(stdout.contains("killed conductor"), "{stdout}");
    let taken: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("6 of 6 jobs DONE, "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(taken >= 1, "the killed conductor held a job: {stdout}");
    for order in 1..=6 {
        // Recorded SUCCESS before the kill or not, `reserve` and `announce` ran once per order.
        let count = |what: &str| {
            stdout
                .lines()
                .filter(|l| l.ends_with(&format!("order {order}: {what}")))
                .count()
        };
        assert_eq!(count("reserve"), 1, "order {order}: {stdout}");
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.ends_with(&format!("order {order}: vm-{order} is ready")))
                .count(),
            1,
            "order {order}: {stdout}"
        );
    }
}
