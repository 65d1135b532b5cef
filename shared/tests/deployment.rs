//! The SAM template: it lints clean with cfn-lint, every crate in `functions/` has a function
//! resource built by cargo-lambda from that crate, and every function resource has a crate.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn venv_bin(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} missing: run through `make test` (it installs the local tools)",
        path.display()
    );
    path
}

/// The template as JSON, parsed by PyYAML from the project's virtualenv (the template uses the
/// long form of intrinsic functions, so any YAML parser reads it).
fn template() -> Value {
    let output = Command::new(venv_bin("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(root().join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_template_passes_cfn_lint() {
    let output = Command::new(venv_bin("cfn-lint"))
        .arg(root().join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_function_crate_has_a_resource_and_every_resource_a_crate() {
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(crates.len() >= 8, "{crates:?}");

    let template = template();
    let mut built = BTreeSet::new();
    for (logical_id, resource) in template["Resources"].as_object().unwrap() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let metadata = &resource["Metadata"];
        assert_eq!(
            metadata["BuildMethod"], "rust-cargolambda",
            "{logical_id} is not built by cargo-lambda"
        );
        let binary = metadata["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id} names no Binary"));
        assert!(
            built.insert(binary.to_owned()),
            "two resources build {binary}"
        );
    }
    assert_eq!(built, crates, "function resources and crates differ");
}

#[test]
fn functions_run_on_arm64_al2023_and_workers_report_partial_batch_failures() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], serde_json::json!(["arm64"]));
    for resource in template["Resources"].as_object().unwrap().values() {
        for event in resource["Properties"]["Events"]
            .as_object()
            .into_iter()
            .flat_map(|e| e.values())
        {
            if event["Type"] == "SQS" {
                assert_eq!(
                    event["Properties"]["FunctionResponseTypes"],
                    serde_json::json!(["ReportBatchItemFailures"])
                );
            }
        }
    }
}

#[test]
fn sam_build_needs_no_extra_flags() {
    let samconfig = std::fs::read_to_string(root().join("samconfig.toml")).unwrap();
    assert!(
        samconfig.contains("beta_features = true"),
        "the cargo-lambda builder is a beta feature"
    );
}
