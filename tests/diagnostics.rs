//! What an IDE receives: `cargo check --message-format=json` on a crate of failing cases from
//! ui-tests/fail/, each a binary of its own. Every mistake is one error — no duplicates, no
//! follow-on errors — whose primary span is in the user's file and whose message names no hidden
//! item. (The ui tests pin each message's text; this pins what rustc sends a tool, where the
//! same error once arrived up to six times.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each case, and how many mistakes it makes.
const CASES: &[(&str, usize)] = &[
    ("type_mismatch", 1),
    ("not_a_task", 1),
    ("durable_two_values_not_serializable", 1),
    ("module_as_step", 1),
    ("hook_without_revert_attr", 1),
    ("type_mismatch_by_value", 1),
    ("type_mismatch_flow_input", 1),
    ("type_mismatch_several", 2),
    ("type_mismatch_subflow_output", 1),
    ("type_mismatch_vec_into_slice", 1),
    ("type_mismatch_in_map", 1),
    ("several_mistakes", 4),
    ("cycle_two_steps", 1),
    ("two_cycles", 2),
    ("link_inside_linear", 1),
    ("flow_output_type_mismatch", 1),
    ("durable_value_not_serializable", 1),
    ("durable_subflow_not_serializable", 1),
    ("value_read_twice_not_clone", 1),
    ("revert_hook_result_wrong_type", 1),
    ("revert_hook_failures_wrong_type", 1),
    ("map_over_not_vec", 1),
    ("map_over_wrong_element", 1),
    ("decider_not_bool", 1),
    ("retry_times_wrong_type", 1),
    ("retry_for_each_wrong_type", 1),
    ("task_error_used_in_flow_generic", 1),
    ("task_error_used_in_flow_pattern", 1),
    ("task_error_used_in_flow_provides", 1),
    ("type_mismatch_into_subflow_input", 1),
    ("type_mismatch_subflow_into_subflow", 2),
    ("map_over_not_vec_with_revert", 1),
    ("map_over_wrong_element_with_revert", 1),
    ("revert_hook_input_wrong_type", 2),
    ("decider_param_wrong_type", 2),
    ("type_mismatch_optional", 2),
    ("type_mismatch_static_ref", 1),
];

/// One error as rustc reported it: its message and where its primary span is.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone)]
struct Reported {
    message: String,
    file: String,
    line: u64,
    column: u64,
}

#[test]
fn each_mistake_is_one_error_in_the_users_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = root.join("target").join("diagnostics-crate");
    let bins = krate.join("src").join("bin");
    let _ = std::fs::remove_dir_all(&bins);
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"diagnostics\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             [dependencies]\ntaskflow = {{ path = {:?} }}\n[workspace]\n",
            root.join("taskflow")
        ),
    )
    .unwrap();
    // The workspace's lock: the same versions as every other build here, nothing fetched.
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    for (case, _) in CASES {
        std::fs::copy(
            root.join("ui-tests/fail").join(format!("{case}.rs")),
            bins.join(format!("{case}.rs")),
        )
        .unwrap();
    }

    let output = Command::new(env!("CARGO"))
        .args([
            "check",
            "--offline",
            "--quiet",
            "--bins",
            "--keep-going",
            "--message-format=json",
        ])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    assert!(!output.status.success(), "every case fails to build");

    let mut errors: BTreeMap<String, Vec<Reported>> = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let msg: serde_json::Value = serde_json::from_str(line).unwrap();
        if msg["reason"] != "compiler-message" || msg["message"]["level"] != "error" {
            continue;
        }
        let target = msg["target"]["name"].as_str().unwrap().to_owned();
        let message = msg["message"]["message"].as_str().unwrap().to_owned();
        let primary = msg["message"]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["is_primary"] == true);
        let Some(span) = primary else {
            panic!("{target}: an error without a place: {message}");
        };
        errors.entry(target).or_default().push(Reported {
            message,
            file: span["file_name"].as_str().unwrap().to_owned(),
            line: span["line_start"].as_u64().unwrap(),
            column: span["column_start"].as_u64().unwrap(),
        });
    }

    let mut wrong = Vec::new();
    for &(case, mistakes) in CASES {
        let got = errors.remove(case).unwrap_or_default();
        let user_file = PathBuf::from("src/bin").join(format!("{case}.rs"));
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        if got.len() != mistakes || unique.len() != got.len() {
            wrong.push(format!(
                "{case}: {mistakes} mistake(s), {} error(s): {got:#?}",
                got.len()
            ));
        }
        for e in &got {
            if Path::new(&e.file) != user_file {
                wrong.push(format!("{case}: an error outside the user's file: {e:?}"));
            }
            if e.message.contains("__") {
                wrong.push(format!("{case}: a hidden name in the message: {e:?}"));
            }
        }
    }
    assert!(errors.is_empty(), "errors of no case: {errors:#?}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
