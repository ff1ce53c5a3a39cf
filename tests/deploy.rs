//! deploy/ checked offline: every Kubernetes manifest parses as YAML with the fields a
//! cluster needs, the runner's command line is accepted by the real binary, and the systemd
//! units pass `systemd-analyze verify` (or, where it is missing, parse as unit files).

mod common;

use common::BIN;
use serde_norway::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(deploy().join("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            for doc in documents(&path) {
                out.push((path.clone(), doc));
            }
        }
    }
    out
}

fn kind<'a>(all: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    &all.iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

#[test]
fn every_manifest_parses_and_names_its_kind() {
    let all = manifests();
    assert!(all.len() >= 5, "{}", all.len());
    for (path, doc) in &all {
        assert!(
            doc["apiVersion"].is_string(),
            "{}: no apiVersion",
            path.display()
        );
        assert!(
            doc["metadata"]["name"].is_string(),
            "{}: no name",
            path.display()
        );
    }
}

#[test]
fn the_runner_deployment_has_a_readiness_probe_limits_and_a_command_line_the_binary_accepts() {
    let all = manifests();
    let runner = kind(&all, "Deployment", "flightdeck-runner");
    let container = &runner["spec"]["template"]["spec"]["containers"][0];
    // The readiness probe is `flightdeck runner-ready` on the state dir the runner's config
    // names: run here on an empty dir, it says not ready.
    let probe: Vec<String> = container["readinessProbe"]["exec"]["command"]
        .as_sequence()
        .expect("an exec readiness probe")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(probe[..2], ["flightdeck", "runner-ready"], "{probe:?}");
    let config_text = kind(&all, "ConfigMap", "flightdeck-runner")["data"]["runner.toml"]
        .as_str()
        .unwrap()
        .to_string();
    let config: toml::Value = config_text.parse().unwrap();
    let state_dir = config["server"]["data_dir"].as_str().unwrap();
    assert_eq!(probe[2..], ["--state-dir", state_dir], "{probe:?}");
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["runner-ready", "--state-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));
    for bound in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][what].is_string(),
                "resources.{bound}.{what}"
            );
        }
    }
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    // Every flag is one the binary knows (clap refuses an unknown one before --help).
    let out = Command::new(BIN)
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the runner config the pod mounts is a config the binary loads.
    let config = kind(&all, "ConfigMap", "flightdeck-runner")["data"]["runner.toml"]
        .as_str()
        .unwrap();
    let parsed: Result<toml::Value, _> = config.parse();
    assert!(parsed.is_ok(), "{parsed:?}");
    // The server keeps its queue on a volume that outlives the pod.
    let server = kind(&all, "StatefulSet", "flightdeck");
    assert_eq!(server["spec"]["replicas"], 1);
    assert!(server["spec"]["volumeClaimTemplates"].is_sequence());
}

#[test]
fn the_systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    std::fs::write(&env, "FLIGHTDECK_RUNNER_TOKEN=x\n").unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(text.contains(section), "{}: no {section}", path.display());
        }
        assert!(text.contains("NoNewPrivileges=yes") && text.contains("ProtectSystem=strict"));
        // Verified against this build's binary (verify insists the ExecStart program exists).
        let text = text
            .replace("/usr/local/bin/flightdeck", BIN)
            .replace("/etc/flightdeck-runner/env", &env.display().to_string());
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    assert_eq!(units.len(), 2);
    match Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => println!("systemd-analyze is not installed: the units were only parsed"),
    }
}
