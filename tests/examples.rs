//! The README's main example behaves as documented: it succeeds, and with `--fail-at configure`
//! it rolls back (volume detached, server deleted) and exits non-zero with the error.

use std::process::{Command, Output};

fn run_example(args: &[&str]) -> Output {
    Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "boot_vm", "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs")
}

#[test]
fn boot_vm_succeeds_and_rolls_back_when_configure_fails() {
    let ok = run_example(&[]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("done: server srv-42 with volume vol-7"),
        "{stdout}"
    );

    let failed = run_example(&["--fail-at", "configure"]);
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stdout}\n{stderr}");
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
    assert!(
        stderr.contains("error: step `configure` failed"),
        "{stderr}"
    );

    let usage = run_example(&["--fail-at", "nowhere"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("no such step"));
}
