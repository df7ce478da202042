//! The `lineage` binary end to end: `plugin inspect`, `plugin test` and
//! `bench plugin`, as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value as Json;

use crate::support::{components, repo_root};

pub(crate) fn lineage(args: &[&str]) -> Output {
    components();
    Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(args)
        .current_dir(repo_root())
        .env(
            "PLUGIN_CACHE_DIR",
            repo_root().join("target/test-plugin-cache"),
        )
        .env_remove("PLUGIN_PATH")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lineage")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn inspect_prints_the_columns() {
    let out = lineage(&["plugin", "inspect", "plugins/enrich.wasm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("plugin   enrich 0.1.0\n"), "{text}");
    for line in [
        "uuid             string        not null",
        "timestamp        int64         not null, event time: decides the output hour",
        "kafka_partition  int32         not null",
        "checkpoint_id    int64         not null, added by the host",
        "input    Avro record com.lineage.InputEvent",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[test]
fn inspect_json_is_machine_readable() {
    let out = lineage(&["plugin", "inspect", "--json", "plugins/enrich.wasm"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: Json = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["name"], "enrich");
    assert_eq!(doc["event_time"], "timestamp");
    assert_eq!(doc["columns"].as_array().unwrap().len(), 5);
    assert_eq!(doc["columns"][3]["name"], "kafka_partition");
    assert_eq!(doc["columns"][3]["type"], "int32");
    assert_eq!(doc["input_schema"]["name"], "InputEvent");
    assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn test_runs_the_shipped_samples() {
    let out = lineage(&[
        "plugin",
        "test",
        "plugins/enrich.wasm",
        "--input",
        "plugins/samples/enrich.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let samples =
        std::fs::read_to_string(repo_root().join("plugins/samples/enrich.jsonl")).unwrap();
    assert_eq!(lines.len(), samples.lines().count(), "one line per record");

    assert_eq!(lines[0]["outcome"], "keep");
    assert_eq!(
        lines[0]["row"]["uuid"],
        "6f1c2a9e-5b7d-4c1e-9a3f-2d8e4b6c0a1f"
    );
    assert_eq!(lines[0]["row"]["timestamp"], 1_732_550_400_000i64);
    assert_eq!(lines[0]["row"]["kafka_topic"], "events");
    assert_eq!(lines[0]["row"]["kafka_partition"], 0);
    assert_eq!(lines[0]["row"]["kafka_offset"], 0);
    assert_eq!(lines[1]["outcome"], "keep");

    let reasons: Vec<&str> = lines[2..]
        .iter()
        .map(|l| {
            assert_eq!(l["outcome"], "drop", "{l}");
            l["reason"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "uuid: invalid character: found `n` at 0 in \"not-a-uuid\"",
            "timestamp: 1732550403 is not epoch milliseconds between 2000 and 2100",
            "avro: unexpected end of input at byte 13",
            "empty value",
            "empty value (tombstone)",
        ]
    );
    assert_eq!(lines[4]["partition"], 5);
    assert_eq!(lines[4]["offset"], 2);
    assert!(
        stderr(&out).contains("plugin test: 7 records, 2 kept, 5 dropped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn test_reads_stdin_and_passes_guest_logs_to_the_host_log() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["plugin", "test", "--input", "-"])
        .arg(&components().hostile)
        .env("NO_COLOR", "1")
        .env(
            "PLUGIN_CACHE_DIR",
            repo_root().join("target/test-plugin-cache"),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = [
        r#"{"value": "bG9n"}"#,     // "log"
        r#"{"value": "cHJpbnQ="}"#, // "print"
        r#"{"value": "dHJhcA=="}"#, // "trap"
    ]
    .join("\n");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("hostile plugin logs offset 0"), "{log}");
    assert!(log.contains("stream=\"stdout\""), "{log}");
    assert!(
        log.contains("plugin output over --plugin-output-limit was discarded"),
        "{log}"
    );
    let lines: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["row"]["text"], "logged");
    assert_eq!(lines[1]["row"]["text"], "printed");
    assert!(
        lines[2]["reason"]
            .as_str()
            .unwrap()
            .starts_with("plugin trap: panicked at")
    );
}

#[test]
fn bad_input_fails_with_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let failure = |content: &str| {
        std::fs::write(&input, content).unwrap();
        let out = lineage(&[
            "plugin",
            "test",
            "plugins/enrich.wasm",
            "--input",
            input.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{content} was accepted");
        stderr(&out)
    };
    let message = failure(
        "{\"value\": {\"uuid\": \"x\", \"timestamp\": 1}}\n{\"value\": \"!!not base64\"}\n",
    );
    assert!(
        message.contains("in.jsonl line 2: value is a string but not base64"),
        "{message}"
    );
    let message = failure("{\"value\": {\"uuid\": 5}}\n");
    assert!(
        message.contains("in.jsonl line 1: value does not fit the plugin's input schema"),
        "{message}"
    );
    let message = failure("{\"valeu\": null}\n");
    assert!(message.contains("unknown field `valeu`"), "{message}");
    let message = failure("\n\n");
    assert!(message.contains("in.jsonl: holds no records"), "{message}");
}

#[test]
fn a_bad_component_fails_with_its_path() {
    let out = lineage(&[
        "plugin",
        "test",
        "no/such.wasm",
        "--input",
        "plugins/samples/enrich.jsonl",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("plugin no/such.wasm: cannot read it"),
        "{}",
        stderr(&out)
    );
    let out = lineage(&["plugin", "inspect", "Cargo.toml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("plugin Cargo.toml: not a WebAssembly component"));
}

#[test]
fn bad_limits_fail_with_the_flag_named() {
    let out = lineage(&[
        "plugin",
        "inspect",
        "plugins/enrich.wasm",
        "--plugin-memory-limit",
        "a lot",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--plugin-memory-limit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_reports_rates_for_every_path() {
    let out = lineage(&[
        "bench",
        "plugin",
        "--records",
        "3000",
        "--batch-sizes",
        "1,64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "3000 seed records",
        "wasm, fuel metered",
        "wasm, no fuel",
        "native",
        "wasm/native enrich at batch 64",
        "peak RSS: ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let rows = text
        .lines()
        .filter(|l| l.starts_with("wasm,") || l.starts_with("native "))
        .count();
    assert_eq!(rows, 4, "{text}");
    assert!(Path::new(&repo_root().join("plugins/enrich.wasm")).exists());
}

/// The pipeline bench reads framed values as it reads bare ones: the same
/// records are kept and dropped (v1 and v2 alike; bad framing and unknown
/// ids where bare values were garbage), into as many files.
#[test]
fn bench_pipeline_keeps_the_same_records_framed_or_bare() {
    let figures = |format: &str| {
        let out = lineage(&[
            "bench",
            "pipeline",
            "--records",
            "12000",
            "--partitions",
            "3",
            "--invalid-share",
            "0.1",
            "--input-format",
            format,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name:?} in\n{text}"))
                .split_whitespace()
                .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        (line("kept / dropped"), line("files, bytes")[0].clone())
    };
    let (bare, bare_files) = figures("avro");
    let (framed, framed_files) = figures("confluent");
    assert_eq!(bare, framed, "kept / dropped");
    assert_eq!(bare_files, framed_files, "files");
    assert!(bare[0].parse::<u64>().unwrap() > 10_000, "{bare:?}");
}
