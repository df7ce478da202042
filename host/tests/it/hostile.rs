//! A plugin that misbehaves on purpose: the host survives every kind of
//! failure, drops exactly the offending record with the right reason, and
//! answers the rest of the batch normally.

use std::time::Duration;

use crate::support::{config, run_hostile};

fn ok(offset: usize, text: &str) -> String {
    format!("keep [String({text:?}), Int64({offset}), Null, Null, Null, Null, Null]")
}

/// Runs `bad` in the middle of a batch of good records and returns the
/// drop reason of the bad one, after checking the good ones were kept.
fn isolate(
    bad: &str,
    config: lineage::plugin::PluginConfig,
) -> (String, lineage::plugin::WorkerStats) {
    let batch = ["ok:a", "ok:b", "ok:c", bad, "ok:e", "ok:f", "ok:g"];
    let (got, worker) = run_hostile(&batch, config);
    for (i, text) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(got[i], ok(i, text), "record {i} of {got:?}");
    }
    for (i, text) in [(4, "e"), (5, "f"), (6, "g")] {
        assert_eq!(got[i], ok(i, text), "record {i} of {got:?}");
    }
    let reason = got[3]
        .strip_prefix("drop ")
        .unwrap_or_else(|| panic!("{bad} was not dropped: {}", got[3]))
        .to_owned();
    (reason, worker.stats().clone())
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let (reason, stats) = isolate("loop", config());
    assert_eq!(
        reason,
        "plugin fuel exhausted: more than --plugin-fuel-per-record=1000000"
    );
    assert!(
        stats.failed_calls >= 3,
        "bisected down to the record: {stats:?}"
    );
    assert!(
        stats.instances >= 2,
        "the trapped instance was replaced: {stats:?}"
    );
}

#[test]
fn fuel_exhaustion_is_deterministic() {
    let (first, _) = isolate("loop", config());
    let (second, _) = isolate("loop", config());
    assert_eq!(first, second);
}

#[test]
fn the_wall_clock_deadline_backs_up_fuel() {
    let mut config = config();
    config.fuel_per_record = u64::MAX / 1024;
    config.call_timeout = Duration::from_millis(200);
    let (reason, _) = isolate("loop", config);
    assert_eq!(
        reason,
        "plugin timed out: ran past --plugin-call-timeout=200ms"
    );
}

#[test]
fn unbounded_growth_hits_the_memory_limit() {
    let mut config = config();
    config.memory_limit = 32 << 20;
    config.recycle_memory = 16 << 20;
    // Growing memory through the guest's allocator costs fuel too; leave
    // room so that memory, not fuel, is the limit hit.
    config.fuel_per_record = 100_000_000;
    let (reason, _) = isolate("grow", config);
    assert!(
        reason.starts_with("plugin memory exhausted: tried to grow to "),
        "{reason}"
    );
    assert!(
        reason.ends_with("--plugin-memory-limit is 33554432"),
        "{reason}"
    );
}

#[test]
fn a_panic_is_a_trap_with_the_panic_message() {
    let (reason, _) = isolate("trap", config());
    assert!(reason.starts_with("plugin trap: panicked at "), "{reason}");
    assert!(
        reason.ends_with(": hostile plugin panics on offset 3"),
        "{reason}"
    );
}

#[test]
fn unbounded_recursion_overflows_the_stack() {
    let (reason, _) = isolate("recurse", config());
    assert_eq!(
        reason,
        "plugin trap: stack overflow past --plugin-stack-limit=1048576"
    );
}

#[test]
fn too_few_or_too_many_outcomes_isolate_the_record() {
    let (reason, _) = isolate("short", config());
    assert_eq!(reason, "plugin answered 0 outcomes for 1 record");
    let (reason, _) = isolate("extra", config());
    assert_eq!(reason, "plugin answered 2 outcomes for 1 record");
}

#[test]
fn rows_that_break_the_declared_columns_are_dropped() {
    let (reason, stats) = isolate("wrong-type", config());
    assert_eq!(
        reason,
        "plugin answered int64 for column \"text\", declared string"
    );
    assert_eq!(stats.failed_calls, 0, "a bad row needs no retry");
    let (reason, stats) = isolate("wrong-arity", config());
    assert_eq!(reason, "plugin answered a row of 3 values for 7 columns");
    assert_eq!(stats.failed_calls, 0, "a short row shifts no other row");
    let (reason, _) = isolate("null", config());
    assert_eq!(
        reason,
        "plugin answered null for non-nullable column \"text\""
    );
}

#[test]
fn the_filesystem_is_out_of_reach() {
    let (reason, _) = isolate("file", config());
    assert!(reason.starts_with("file: "), "{reason}");
    assert!(!reason.contains("root:"), "{reason}");
}

#[test]
fn no_environment_arguments_or_working_directory() {
    let (got, _) = run_hostile(&["env"], config());
    assert_eq!(got, [ok(0, "env=0 args=0")]);
}

#[test]
fn clocks_and_randomness_are_fixed() {
    // Every fresh instance sees the same clock and the same random
    // sequence, so a replay decides the same.
    let (first, _) = run_hostile(&["clock", "clock"], config());
    let (second, _) = run_hostile(&["clock", "clock"], config());
    assert!(first[0].contains("now=0 random="), "{first:?}");
    assert_eq!(first, second);
}

#[test]
fn sleeping_takes_no_time_and_waiting_for_time_runs_out_of_fuel() {
    // A real 30 s sleep would block in the host, where the epoch deadline
    // cannot interrupt it, and the call would then time out: the one-second
    // deadline turns a regression into a failure rather than a slow pass.
    let mut config = config();
    config.call_timeout = Duration::from_secs(1);
    let (got, _) = run_hostile(&["sleep", "ok:x"], config.clone());
    assert_eq!(got, [ok(0, "slept"), ok(1, "x")]);
    let (reason, _) = isolate("wait", config);
    assert_eq!(
        reason,
        "plugin fuel exhausted: more than --plugin-fuel-per-record=1000000"
    );
}

#[test]
fn output_and_logs_do_not_stop_the_plugin() {
    let (got, worker) = run_hostile(&["print", "log", "ok:z"], config());
    let stats = worker.stats();
    assert_eq!(got, [ok(0, "printed"), ok(1, "logged"), ok(2, "z")]);
    assert_eq!(stats.failed_calls, 0);
}

#[test]
fn an_instance_is_reused_until_its_memory_passes_the_recycle_mark() {
    let mut config = config();
    config.recycle_memory = 16 << 20;
    let plugin = crate::support::load(&crate::support::components().hostile, config);
    let mut worker = lineage::plugin::PluginWorker::new(plugin);
    for batch in [&["ok:a"][..], &["ok:b"], &["big:24"], &["ok:c"], &["ok:d"]] {
        let values = crate::support::commands(batch);
        let outcomes = worker.process(&crate::support::records(&values)).unwrap();
        assert_eq!(outcomes.kept(), 1);
    }
    let stats = worker.stats();
    assert_eq!(stats.calls, 5);
    assert_eq!(stats.failed_calls, 0);
    assert_eq!(
        stats.instances, 2,
        "replaced once, after the call that grew past 16MiB: {stats:?}"
    );
}

#[test]
fn many_bad_records_in_one_batch_are_all_isolated() {
    let batch: Vec<String> = (0..64)
        .map(|i| match i % 8 {
            1 => "trap".to_owned(),
            5 => "short".to_owned(),
            _ => format!("ok:{i}"),
        })
        .collect();
    let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
    let (got, _) = run_hostile(&batch, config());
    for (i, outcome) in got.iter().enumerate() {
        match i % 8 {
            1 => assert!(outcome.starts_with("drop plugin trap: "), "{i}: {outcome}"),
            5 => assert_eq!(outcome, "drop plugin answered 0 outcomes for 1 record"),
            _ => assert_eq!(outcome, &ok(i, &i.to_string())),
        }
    }
}

#[test]
fn every_value_type_crosses_the_boundary() {
    let (got, _) = run_hostile(&["types", "ok:x"], config());
    assert_eq!(
        got,
        [
            "keep [String(\"types\"), Int64(0), Bytes([0, 1, 255]), Boolean(true), Int32(-7), \
             Float64(2.5), TimestampMs(1732550400000)]"
                .to_owned(),
            ok(1, "x"),
        ]
    );
}

#[test]
fn keys_headers_and_timestamps_reach_the_plugin_intact() {
    use lineage::plugin::{Header, KafkaRecord, PluginWorker};
    let plugin = crate::support::load(&crate::support::components().hostile, config());
    let headers = [
        Header {
            key: "source",
            value: Some(b"mobile"),
        },
        Header {
            key: "empty",
            value: Some(b""),
        },
        Header {
            key: "absent",
            value: None,
        },
    ];
    let record =
        |key: Option<&'static [u8]>, headers: &'static [Header<'static>], ts| KafkaRecord {
            topic: "orders.v2",
            partition: 11,
            offset: 42,
            timestamp: ts,
            key,
            value: Some(b"meta"),
            headers,
            schema_id: None,
        };
    let headers: &'static [Header<'static>] = Box::leak(Box::new(headers));
    // A batch has one topic and partition: the host cuts the run where
    // they change, and each call's spans start over in its own data.
    let elsewhere = KafkaRecord {
        topic: "payments",
        partition: 3,
        ..record(Some(b"k"), &headers[..1], Some(5))
    };
    let records = [
        record(Some(b"user-7"), headers, Some(1_732_550_400_123)),
        record(Some(b""), &[], None),
        elsewhere,
        record(None, &headers[1..2], Some(-1)),
        record(Some(b"user-8"), &headers[2..], Some(6)),
    ];
    let outcomes = PluginWorker::new(plugin).process(&records).unwrap();
    let got = crate::support::describe(&outcomes);
    let text = |s: &str| format!("keep [String({s:?}), Int64(42), Null, Null, Null, Null, Null]");
    assert_eq!(
        got,
        [
            text(
                "topic=orders.v2 partition=11 ts=Some(1732550400123) key=Some(\"user-7\") \
                 headers=[(\"source\", Some(\"mobile\")), (\"empty\", Some(\"\")), (\"absent\", None)]"
            ),
            text("topic=orders.v2 partition=11 ts=None key=Some(\"\") headers=[]"),
            text(
                "topic=payments partition=3 ts=Some(5) key=Some(\"k\") \
                 headers=[(\"source\", Some(\"mobile\"))]"
            ),
            text(
                "topic=orders.v2 partition=11 ts=Some(-1) key=None headers=[(\"empty\", Some(\"\"))]"
            ),
            text(
                "topic=orders.v2 partition=11 ts=Some(6) key=Some(\"user-8\") \
                 headers=[(\"absent\", None)]"
            ),
        ]
    );
}

/// A component written by hand (WAT) whose `process` answers one outcome
/// per record, malformed the way `answer` says: no guest language's
/// bindings would produce these, so only a hand-written guest can test
/// that the host's own decoder of the canonical ABI refuses them.
fn malformed_component(answer: &str) -> Vec<u8> {
    // Memory layout: strings at 0x100.., the one column at 0x200, the
    // plugin-info record at 0x300, the answer (outcomes and values, each
    // pointer and count; no values, since nothing is kept) at 0x400,
    // bytes that are not UTF-8 at 0x500, outcomes from 0x800, the bump
    // allocator from 0x10000 (the second page).
    let fill = match answer {
        // The outcomes at an address past the end of memory.
        "bad-pointer" => "(i32.store (i32.const 0x400) (i32.const 0x7fff0000))",
        // Every outcome's case is 7; `outcome` has two.
        "bad-discriminant" => {
            "(call $outcomes (local.get 8) (i32.const 7) (i32.const 0) (i32.const 0))"
        }
        // Every outcome is `drop` with a reason that is not UTF-8.
        "invalid-utf8" => {
            "(call $outcomes (local.get 8) (i32.const 1) (i32.const 0x500) (i32.const 3))"
        }
        // Every record kept with a row of one value, and no values.
        "rows-past-values" => {
            "(call $outcomes (local.get 8) (i32.const 0) (i32.const 1) (i32.const 0))"
        }
        // Rows of one value each, the values past the end of memory.
        "bad-values-pointer" => {
            "(call $outcomes (local.get 8) (i32.const 0) (i32.const 1) (i32.const 0))
             (i32.store (i32.const 0x408) (i32.const 0x7fff0000))
             (i32.store (i32.const 0x40c) (local.get 8))"
        }
        // Rows of one value each, every value of case 9; `value` has eight.
        "bad-value-case" => {
            "(call $outcomes (local.get 8) (i32.const 0) (i32.const 1) (i32.const 0))
             (call $values (local.get 8) (i32.const 9))"
        }
        other => panic!("no such answer {other}"),
    };
    let wat = format!(
        r#"(component
  (core module $m
    (memory (export "memory") 2)
    (global $bump (mut i32) (i32.const 0x10000))
    (data (i32.const 0x100) "malformed")
    (data (i32.const 0x110) "0.1.0")
    (data (i32.const 0x120) "text")
    ;; column {{ name: "text", type: string, nullable: true }}
    (data (i32.const 0x200) "\20\01\00\00\04\00\00\00\00\01\00\00")
    ;; plugin-info {{ name, version, columns: [column], event-time: none, input-schema: none }}
    (data (i32.const 0x300) "\00\01\00\00\09\00\00\00\10\01\00\00\05\00\00\00\00\02\00\00\01\00\00\00")
    (data (i32.const 0x500) "\ff\fe\fd")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $at) (local.get 3)))
      (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 0x10000)))
        (then (drop (memory.grow
          (i32.add (i32.const 1)
            (i32.div_u (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 0x10000)))
                       (i32.const 0x10000)))))))
      (local.get $at))
    (func (export "describe") (result i32) (i32.const 0x300))
    ;; `count` outcomes of case `case` with payload (ptr, len) at 0x800.
    (func $outcomes (param $count i32) (param $case i32) (param $ptr i32) (param $len i32)
      (local $i i32)
      (local $at i32)
      (i32.store (i32.const 0x400) (i32.const 0x800))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
          (local.set $at (i32.add (i32.const 0x800) (i32.mul (local.get $i) (i32.const 12))))
          (i32.store8 (local.get $at) (local.get $case))
          (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $ptr))
          (i32.store (i32.add (local.get $at) (i32.const 8)) (local.get $len))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next))))
    ;; `count` values of case `case` at 0x1000, as the answer's values.
    (func $values (param $count i32) (param $case i32)
      (local $i i32)
      (i32.store (i32.const 0x408) (i32.const 0x1000))
      (i32.store (i32.const 0x40c) (local.get $count))
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
          (i32.store8 (i32.add (i32.const 0x1000) (i32.mul (local.get $i) (i32.const 16))) (local.get $case))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next))))
    ;; The batch comes flat: topic, partition, data, headers, records.
    (func (export "process")
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (i32.store (i32.const 0x404) (local.get 8))
      (i32.store (i32.const 0x408) (i32.const 0x800))
      (i32.store (i32.const 0x40c) (i32.const 0))
      {fill}
      (i32.const 0x400)))
  (core instance $i (instantiate $m))
  (type $column-type (enum "string" "bytes" "boolean" "int32" "int64" "float64" "timestamp-ms"))
  (export $column-type' "column-type" (type $column-type))
  (type $column (record (field "name" string) (field "type" $column-type') (field "nullable" bool)))
  (export $column' "column" (type $column))
  (type $plugin-info (record
    (field "name" string) (field "version" string) (field "columns" (list $column'))
    (field "event-time" (option string)) (field "input-schema" (option string))))
  (export $plugin-info' "plugin-info" (type $plugin-info))
  (type $span (record (field "start" u32) (field "len" u32)))
  (export $span' "span" (type $span))
  (type $header (record (field "key" $span') (field "value" (option $span'))))
  (export $header' "header" (type $header))
  (type $kafka-record (record
    (field "offset" s64) (field "timestamp" (option s64)) (field "key" (option $span'))
    (field "value" (option $span')) (field "headers" $span') (field "schema-id" (option u32))))
  (export $kafka-record' "kafka-record" (type $kafka-record))
  (type $batch (record
    (field "topic" string) (field "partition" s32) (field "data" (list u8))
    (field "headers" (list $header')) (field "records" (list $kafka-record'))))
  (export $batch' "batch" (type $batch))
  (type $value (variant
    (case "null") (case "string" string) (case "bytes" (list u8)) (case "boolean" bool)
    (case "int32" s32) (case "int64" s64) (case "float64" f64) (case "timestamp-ms" s64)))
  (export $value' "value" (type $value))
  (type $outcome (variant (case "keep" u32) (case "drop" string)))
  (export $outcome' "outcome" (type $outcome))
  (type $answer (record (field "outcomes" (list $outcome')) (field "values" (list $value'))))
  (export $answer' "answer" (type $answer))
  (func $describe (result $plugin-info')
    (canon lift (core func $i "describe") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func $process (param "batch" $batch') (result $answer')
    (canon lift (core func $i "process") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (export "describe" (func $describe))
  (export "process" (func $process)))"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("{answer}: {e}"))
}

/// Each of a batch's records is dropped, after the batch is bisected down
/// to single records, with the host's reason for refusing the answer.
fn malformed_reasons(answer: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{answer}.wasm"));
    std::fs::write(&path, malformed_component(answer)).unwrap();
    let plugin = crate::support::load(&path, config());
    let values = crate::support::commands(&["a", "b", "c"]);
    let outcomes = lineage::plugin::PluginWorker::new(plugin)
        .process(&crate::support::records(&values))
        .expect("an instance starts");
    crate::support::describe(&outcomes)
}

#[test]
fn an_answer_pointing_outside_guest_memory_is_dropped_as_malformed() {
    for reason in malformed_reasons("bad-pointer") {
        assert!(
            reason.starts_with("drop plugin answer malformed: list at 0x7fff0000"),
            "{reason}"
        );
    }
}

#[test]
fn an_answer_with_a_case_outcome_does_not_have_is_dropped_as_malformed() {
    for reason in malformed_reasons("bad-discriminant") {
        assert_eq!(
            reason,
            "drop plugin answer malformed: outcome has invalid case 7"
        );
    }
}

#[test]
fn an_answer_whose_rows_and_values_disagree_is_dropped_as_malformed() {
    for reason in malformed_reasons("rows-past-values") {
        assert_eq!(
            reason,
            "drop plugin answer malformed: the kept rows need 1 value, and the answer has 0"
        );
    }
    for reason in malformed_reasons("bad-values-pointer") {
        assert!(
            reason.starts_with("drop plugin answer malformed: list at 0x7fff0000"),
            "{reason}"
        );
    }
    for reason in malformed_reasons("bad-value-case") {
        assert_eq!(
            reason,
            "drop plugin answer malformed: value has invalid case 9"
        );
    }
}

#[test]
fn an_answer_whose_string_is_not_utf8_is_dropped_as_malformed() {
    for reason in malformed_reasons("invalid-utf8") {
        assert!(
            reason.starts_with("drop plugin answer malformed: string at 0x500 is not UTF-8"),
            "{reason}"
        );
    }
}
