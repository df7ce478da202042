//! The shipped plugins besides enrich: `pseudonymize` (Rust) and
//! `enrich-py` (Python, componentize-py), in the real runtime and through
//! `lineage plugin test`, against the Rust enrich as the reference.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use lineage::fixtures::{self, EventKind};
use lineage::plugin::{ColumnType, KafkaRecord, OutcomeRef, Outcomes, PluginWorker, ValueRef};
use serde_json::Value as Json;

use crate::support::{components, config, load};

const TS: i64 = 1_732_550_400_000;

/// Every kind of record the generator makes, and a few more.
fn values() -> Vec<Option<Vec<u8>>> {
    let mut values: Vec<Option<Vec<u8>>> = (0..400u64)
        .map(|n| {
            let kind = match n % 10 {
                3 => EventKind::Garbage,
                5 => EventKind::Empty,
                7 => EventKind::BadUuid,
                _ => EventKind::Valid,
            };
            Some(fixtures::value(kind, n, TS + n as i64))
        })
        .collect();
    let uuid = fixtures::uuid_for(1).to_string();
    values.push(None);
    values.push(Some(fixtures::encode(&uuid, 1_732_550_400))); // seconds
    values.push(Some(fixtures::encode(&uuid, TS)[..5].to_vec())); // cut short
    values.push(Some(fixtures::encode(&uuid.to_uppercase(), TS))); // other forms uuid accepts
    values.push(Some(fixtures::encode(&uuid.replace('-', ""), TS)));
    let mut trailing = fixtures::encode(&uuid, TS);
    trailing.push(0);
    values.push(Some(trailing));
    values
}

fn records(values: &[Option<Vec<u8>>]) -> Vec<KafkaRecord<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| KafkaRecord {
            topic: "events",
            partition: 2,
            offset: i as i64,
            timestamp: Some(TS),
            key: None,
            value: v.as_deref(),
            headers: &[],
            schema_id: None,
        })
        .collect()
}

fn class(reason: &str) -> &str {
    reason.split(':').next().unwrap_or_default()
}

/// Python's and Rust's outcomes agree record by record: the same kept rows,
/// drops of the same reason class. Returns how many were kept.
fn same_outcomes(from_python: &Outcomes, from_rust: &Outcomes) -> usize {
    assert_eq!(from_python.len(), from_rust.len());
    let mut kept = 0;
    for (i, (p, r)) in from_python.iter().zip(from_rust.iter()).enumerate() {
        match (p, r) {
            (OutcomeRef::Keep(p), OutcomeRef::Keep(r)) => {
                assert_eq!(format!("{p:?}"), format!("{r:?}"), "record {i}");
                kept += 1;
            }
            (OutcomeRef::Drop(p), OutcomeRef::Drop(r)) => {
                assert_eq!(class(p), class(r), "record {i}: {p} / {r}");
            }
            (p, r) => panic!("record {i}: python {p:?}, rust {r:?}"),
        }
    }
    kept
}

#[test]
fn the_python_plugin_keeps_and_drops_exactly_what_the_rust_one_does() {
    let python = load(&components().enrich_py, config());
    let identity = python.identity();
    assert_eq!(
        (identity.name.as_str(), identity.version.as_str()),
        ("enrich-py", "0.1.0")
    );
    let rust = load(&components().enrich, config());
    assert_eq!(
        format!("{:?}", python.schema().info.columns),
        format!("{:?}", rust.schema().info.columns)
    );
    assert_eq!(
        python.schema().info.event_time.as_deref(),
        Some("timestamp")
    );
    assert!(python.schema().input_schema.is_some());

    let values = values();
    let records = records(&values);
    let from_python = PluginWorker::new(python).process(&records).unwrap();
    let from_rust = PluginWorker::new(rust).process(&records).unwrap();
    assert_eq!(from_python.len(), records.len());
    let kept = same_outcomes(&from_python, &from_rust);
    assert!(kept > 250, "{kept}");
}

/// Writer schemas of framed values, by id: v1 and v2, and ones InputEvent
/// cannot read (a missing field, a retyped one, another record's name).
const WRITERS: [(u32, &str); 5] = [
    (
        3,
        r#"{"type":"record","name":"InputEvent","fields":[{"name":"uuid","type":"string"}]}"#,
    ),
    (
        4,
        r#"{"type":"record","name":"InputEvent","fields":[{"name":"uuid","type":"string"},{"name":"timestamp","type":"string"}]}"#,
    ),
    (
        5,
        r#"{"type":"record","name":"Click","fields":[{"name":"uuid","type":"string"},{"name":"timestamp","type":"long"}]}"#,
    ),
    (
        6,
        r#"{"type":"record","name":"InputEvent","fields":[{"name":"legacy","type":{"type":"map","values":"int"}},{"name":"uuid","type":"string"},{"name":"timestamp","type":"int"}]}"#,
    ),
    (
        7,
        r#"{"type":"record","name":"InputEvent","fields":[{"name":"uuid","type":"bytes"},{"name":"timestamp","type":"long"}]}"#,
    ),
];

/// Framed values resolved against InputEvent: both plugins read v1 and v2
/// and refuse the same writer schemas, naming the id.
#[test]
fn the_python_plugin_resolves_writer_schemas_as_the_rust_one_does() {
    let ids = fixtures::SchemaIds { v1: 1, v2: 2 };
    let mut framed: Vec<(u32, Vec<u8>)> = (0..60)
        .map(|n| {
            let kind = if n % 10 == 9 {
                EventKind::BadUuid
            } else {
                EventKind::Valid
            };
            let value = fixtures::framed_value(kind, n, TS, ids);
            (
                u32::from_be_bytes(value[1..5].try_into().unwrap()),
                value[5..].to_vec(),
            )
        })
        .collect();
    let uuid = fixtures::uuid_for(1).to_string();
    for (id, _) in WRITERS {
        // Avro writes an int as a long and bytes as a string; id 6 leads
        // with an empty map.
        let body = match id {
            6 => [&[0u8][..], &fixtures::encode(&uuid, 1_700_000_000)].concat(),
            _ => fixtures::encode(&uuid, TS),
        };
        framed.push((id, body));
    }
    let values: Vec<Option<Vec<u8>>> = framed.iter().map(|(_, v)| Some(v.clone())).collect();
    let mut records = records(&values);
    for (record, (id, _)) in records.iter_mut().zip(&framed) {
        record.schema_id = Some(*id);
    }
    let outcomes = |path: &Path| {
        let plugin = load(path, config());
        let schemas = plugin.runtime().schemas();
        schemas.insert(1, fixtures::INPUT_SCHEMA.into());
        schemas.insert(2, fixtures::INPUT_SCHEMA_V2.into());
        for (id, json) in WRITERS {
            schemas.insert(id, json.into());
        }
        PluginWorker::new(plugin).process(&records).unwrap()
    };
    let (from_python, from_rust) = (
        outcomes(&components().enrich_py),
        outcomes(&components().enrich),
    );
    let kept = same_outcomes(&from_python, &from_rust);
    // v1 and v2 alike, and bytes read as a string (id 7). The writer with
    // an extra map and an int timestamp is read, and dropped for its
    // implausible value, not its schema.
    assert_eq!(kept, 54 + 1, "{kept}");
    let OutcomeRef::Drop(reason) = from_rust.get(63).unwrap() else {
        panic!("schema 6 kept")
    };
    assert!(reason.starts_with("timestamp: 1700000000 "), "{reason}");
    for (i, id) in [(60, 3), (61, 4), (62, 5)] {
        let OutcomeRef::Drop(reason) = from_rust.get(i).unwrap() else {
            panic!("schema {id} kept")
        };
        assert!(reason.starts_with(&format!("schema id {id}: ")), "{reason}");
    }
}

#[test]
fn pseudonymize_replaces_the_id_with_its_keyed_hash_and_applies_the_rule() {
    let plugin = load(&components().pseudonymize, config());
    assert_eq!(plugin.identity().name, "pseudonymize");
    let columns: Vec<(&str, ColumnType)> = plugin
        .schema()
        .info
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_))
        .collect();
    assert_eq!(
        columns,
        [
            ("user_key", ColumnType::String),
            ("timestamp", ColumnType::Int64),
            ("kafka_topic", ColumnType::String),
            ("kafka_partition", ColumnType::Int32),
            ("kafka_offset", ColumnType::Int64),
        ]
    );
    let uuid = fixtures::uuid_for(9).to_string();
    let week = 7 * 24 * 3_600_000;
    let values = [
        Some(fixtures::encode(&uuid, TS)),
        Some(fixtures::encode(&uuid, TS - week - 3_600_000)),
        Some(fixtures::encode(&uuid, TS + 2 * 3_600_000)),
        Some(fixtures::value(EventKind::BadUuid, 3, TS)),
    ];
    let records = records(&values);
    let outcomes = PluginWorker::new(plugin).process(&records).unwrap();
    let got: Vec<_> = outcomes.iter().collect();
    let OutcomeRef::Keep(row) = &got[0] else {
        panic!("{:?}", got[0]);
    };
    let key = pseudonymize::user_key(&uuid);
    assert_eq!(row.get(0), Some(ValueRef::String(&key)));
    assert!(!key.contains(&uuid[..8]));
    assert_eq!(row.get(1), Some(ValueRef::Int64(TS)));
    let reasons: Vec<&str> = got[1..]
        .iter()
        .map(|o| match o {
            OutcomeRef::Drop(r) => *r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        reasons[..2],
        [
            "rule late-event: event time is 7d 1h before the Kafka timestamp (limit 7d 0h)",
            "rule future-event: event time is 2h 0m after the Kafka timestamp (limit 1h 0m)",
        ]
    );
    assert!(reasons[2].starts_with("uuid: "), "{}", reasons[2]);
}

/// A fenced code block of plugins/README.md, by what precedes it.
fn guide_block(after: &str, language: &str) -> String {
    let guide = std::fs::read_to_string(crate::support::repo_root().join("plugins/README.md"))
        .expect("plugins/README.md");
    let start = guide
        .find(after)
        .unwrap_or_else(|| panic!("the guide has no {after:?}"));
    let fence = format!("```{language}\n");
    let body = &guide[start..];
    let open = body.find(&fence).expect("a code block") + fence.len();
    let close = body[open..].find("```").expect("its end");
    body[open..open + close].to_owned()
}

/// Runs `lineage plugin test` on a built example over three records.
fn run_example(component: &Path) -> Vec<Json> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lineage"))
        .args(["plugin", "test"])
        .arg(component)
        .args(["--input", "-"])
        .env(
            "PLUGIN_CACHE_DIR",
            crate::support::repo_root().join("target/test-plugin-cache"),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"value\": \"aGVsbG8=\"}\n{\"value\": \"\"}\n{\"value\": \"/w==\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_upper(lines: &[Json]) {
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["row"]["text"], "HELLO", "{lines:?}");
    assert_eq!(lines[1]["reason"], "empty value", "{lines:?}");
    assert!(
        lines[2]["reason"].as_str().unwrap().starts_with("utf-8: "),
        "{lines:?}"
    );
}

/// The guide's examples, built as it says and run as it says: the guide
/// must not rot.
#[test]
fn the_guide_examples_build_and_run() {
    let root = crate::support::repo_root();
    components();
    let dir = tempfile::tempdir().unwrap();
    let copy_wit = |to: &Path| {
        std::fs::create_dir_all(to.join("wit")).unwrap();
        std::fs::copy(root.join("wit/plugin.wit"), to.join("wit/plugin.wit")).unwrap();
    };

    let py = dir.path().join("python");
    copy_wit(&py);
    std::fs::write(py.join("app.py"), guide_block("`app.py`:", "python")).unwrap();
    let componentize = crate::pipeline_support::tool(
        crate::pipeline_support::tools_dir().join("python/bin/componentize-py"),
    );
    let status = Command::new(componentize)
        .args([
            "-d",
            "wit",
            "-w",
            "plugin",
            "componentize",
            "app",
            "-o",
            "upper.wasm",
        ])
        .current_dir(&py)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_upper(&run_example(&py.join("upper.wasm")));

    let rust = dir.path().join("rust");
    copy_wit(&rust);
    std::fs::create_dir_all(rust.join("src")).unwrap();
    std::fs::write(
        rust.join("src/lib.rs"),
        guide_block("`src/lib.rs`:", "rust"),
    )
    .unwrap();
    // What `cargo new --lib` and `cargo add wit-bindgen@0.63` write, plus
    // the guide's [lib]; offline, from the crates this workspace locked.
    std::fs::write(
        rust.join("Cargo.toml"),
        format!(
            "[package]\nname = \"my-plugin\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nwit-bindgen = \"0.63\"\n\n{}\n[workspace]\n",
            guide_block("In `Cargo.toml`:", "toml")
        ),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), rust.join("Cargo.lock")).unwrap();
    let target = root.join("target/guide-example");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&rust)
        .status()
        .unwrap();
    assert!(status.success());
    assert_upper(&run_example(
        &target.join("wasm32-wasip2/release/my_plugin.wasm"),
    ));
}
