//! Every bad-input case: a clear message naming file, line and field, nothing written,
//! and `--skip-bad-rows` importing the rest with a rejects report.

mod common;

use common::*;
use gleaner::data::LoadOptions;
use gleaner::store::Workspace;

fn assert_names(msg: &str, file: &str, line: &str, field: Option<&str>) {
    assert!(msg.contains(file), "no file name in: {msg}");
    assert!(msg.contains(line), "no `{line}` in: {msg}");
    if let Some(f) = field {
        assert!(
            msg.contains(&format!("field `{f}`")),
            "no field `{f}` in: {msg}"
        );
    }
}

#[test]
fn invalid_json_on_line_n() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n{\"instruction\": \"e\", \"output\" \"f\"}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "bad.jsonl", "line 3", None);
    assert!(msg.contains("invalid JSON"), "{msg}");
    let l = skip_bad(&p);
    assert_eq!(l.records.len(), 2);
    assert_eq!(l.rejects.len(), 1);
    assert_eq!(l.rejects[0].line, 3);
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "cut.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"the answer is",
    );
    let msg = load_err(&p);
    assert_names(&msg, "cut.jsonl", "line 2", None);
    assert!(msg.contains("truncated"), "{msg}");
    let p = write(
        dir.path(),
        "cut.json",
        "[{\"instruction\":\"a\",\"output\":\"b\"},\n{\"instruction\":\"c\"",
    );
    let msg = load_err(&p);
    assert_names(&msg, "cut.json", "line 2", None);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn truncated_gzip_stream() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..200 {
        writeln!(gz, "{{\"instruction\":\"q{i}\",\"output\":\"a{i}\"}}").unwrap();
    }
    let bytes = gz.finish().unwrap();
    let p = write(dir.path(), "cut.jsonl.gz", &bytes[..bytes.len() / 2]);
    let msg = load_err(&p);
    assert!(
        msg.contains("cut.jsonl.gz") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn wrong_field_types() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "types.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":42}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "types.jsonl", "line 2", Some("output"));
    assert!(msg.contains("expected a string, found a number"), "{msg}");
    let p = write(
        dir.path(),
        "roles.jsonl",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":{\"x\":1}}]}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "roles.jsonl", "line 1", Some("messages[1].content"));
}

#[test]
fn missing_required_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "missing.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n{\"instruction\":\"only a question\"}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "missing.jsonl", "line 3", Some("output"));
    assert!(msg.contains("missing required field"), "{msg}");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [
        ("e.jsonl", ""),
        ("ws.jsonl", "\n  \n"),
        ("e.csv", "instruction,output\n"),
    ] {
        let p = write(dir.path(), name, body);
        let msg = load_err(&p);
        assert!(msg.contains(name) && msg.contains("empty"), "{msg}");
    }
    let p = write(dir.path(), "arr.json", "[]");
    let msg = load_err(&p);
    assert!(msg.contains("arr.json"), "{msg}");
}

#[test]
fn duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "dups.jsonl",
        "{\"id\":\"a\",\"instruction\":\"x\",\"output\":\"y\"}\n{\"id\":\"b\",\"instruction\":\"x\",\"output\":\"y\"}\n{\"id\":\"a\",\"instruction\":\"z\",\"output\":\"w\"}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "dups.jsonl", "line 3", Some("id"));
    assert!(
        msg.contains("duplicate id \"a\" (first seen on line 1)"),
        "{msg}"
    );
    let l = skip_bad(&p);
    assert_eq!(l.records.len(), 2);
    // Hash ids sidestep the dataset's broken id column without losing a row.
    let opts = LoadOptions {
        hash_ids: true,
        ..LoadOptions::default()
    };
    let l = gleaner::data::load_dataset(&p, &opts).unwrap();
    assert_eq!(l.records.len(), 3);
}

#[test]
fn non_utf8_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"caf".to_vec();
    body.extend_from_slice(&[0xE9]);
    body.extend_from_slice(b"\",\"output\":\"d\"}\n");
    let p = write(dir.path(), "latin1.jsonl", &body);
    let msg = load_err(&p);
    assert_names(&msg, "latin1.jsonl", "line 2", None);
    assert!(
        msg.contains("not valid UTF-8") && msg.contains("0xe9"),
        "{msg}"
    );
    let l = skip_bad(&p);
    assert_eq!(l.records.len(), 1);
}

#[test]
fn utf8_bom_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(b"{\"instruction\":\"a\",\"output\":\"b\"}\n");
    let p = write(dir.path(), "bom.jsonl", &body);
    assert_eq!(load(&p).records[0].instruction.as_deref(), Some("a"));
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(b"[{\"instruction\":\"a\",\"output\":\"b\"}]");
    let p = write(dir.path(), "bom.json", &body);
    assert_eq!(load(&p).records.len(), 1);
}

#[test]
fn a_single_ten_megabyte_field() {
    let dir = tempfile::tempdir().unwrap();
    let big = "lorem ipsum ".repeat(10 * 1024 * 1024 / 12);
    let body = format!(
        "{{\"instruction\":\"summarize\",\"output\":\"{big}\"}}\n{{\"instruction\":\"b\",\"output\":\"c\"}}\n"
    );
    let p = write(dir.path(), "big.jsonl", body);
    let l = load(&p);
    assert_eq!(l.records[0].output.as_ref().unwrap().len(), big.len());
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let frame = ws.read_frame(Some(&["preview_response"])).unwrap();
    let preview = frame
        .column("preview_response")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert!(
        preview.chars().count() <= 161,
        "previews stay short: {}",
        preview.len()
    );
}

#[test]
fn deeply_nested_junk() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let body = format!(
        "{{\"instruction\":\"a\",\"output\":\"b\"}}\n{{\"instruction\":\"x\",\"output\":\"y\",\"junk\":{deep}}}\n"
    );
    let p = write(dir.path(), "deep.jsonl", &body);
    let msg = load_err(&p);
    assert_names(&msg, "deep.jsonl", "line 2", None);
    assert!(msg.contains("recursion limit"), "{msg}");
    // Nested junk where text belongs is a type error on that field.
    let p = write(
        dir.path(),
        "nested.jsonl",
        "{\"instruction\":{\"a\":{\"b\":[1,2,{\"c\":null}]}},\"output\":\"y\"}\n",
    );
    let msg = load_err(&p);
    assert_names(&msg, "nested.jsonl", "line 1", Some("instruction"));
}

#[test]
fn unknown_schema_lists_the_fields_seen() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "odd.jsonl",
        "{\"question\":\"q\",\"answer\":\"a\"}\n",
    );
    let msg = load_err(&p);
    assert!(
        msg.contains("odd.jsonl") && msg.contains("unknown record schema"),
        "{msg}"
    );
    assert!(msg.contains("answer, question"), "{msg}");
    let p = write(dir.path(), "scalar.jsonl", "42\n");
    let msg = load_err(&p);
    assert_names(&msg, "scalar.jsonl", "line 1", None);
}

#[test]
fn failed_import_writes_nothing_and_skip_writes_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "mixed.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\nnot json\n{\"instruction\":\"c\",\"output\":7}\n{\"instruction\":\"d\",\"output\":\"e\"}\n",
    );
    let before = tree(dir.path());
    let err = Workspace::import(&p, None, &LoadOptions::default(), false)
        .err()
        .unwrap();
    assert!(
        err.message.contains("line 2") && err.message.contains("and 1 more bad row"),
        "{}",
        err.message
    );
    assert!(err.hint.as_deref().unwrap().contains("--skip-bad-rows"));
    assert_eq!(tree(dir.path()), before, "nothing written on failure");
    let source_before = std::fs::read(&p).unwrap();
    let opts = LoadOptions {
        skip_bad_rows: true,
        ..LoadOptions::default()
    };
    let (ws, report) = Workspace::import(&p, None, &opts, false).unwrap();
    assert_eq!((report.imported, report.rejected), (2, 2));
    let rejects = std::fs::read_to_string(ws.dir.join("rejects.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = rejects
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(rows[1]["line"], 3);
    assert_eq!(rows[1]["field"], "output");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        source_before,
        "source untouched"
    );
}

#[test]
fn csv_with_a_bad_byte_names_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"instruction,output\nq1,a1\nq2,a".to_vec();
    body.push(0xff);
    body.extend_from_slice(b"2\n");
    let p = write(dir.path(), "bad.csv", &body);
    let msg = load_err(&p);
    assert_names(&msg, "bad.csv", "line 3", Some("output"));
}

#[test]
fn bad_mapping_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let map = write(dir.path(), "map.toml", "[columns]\npromt = \"q\"\n");
    let err = gleaner::data::MappingFile::load(&map).unwrap_err();
    assert!(
        err.message.contains("map.toml") && err.message.contains("promt"),
        "{}",
        err.message
    );
}
