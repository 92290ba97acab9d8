//! Format detection and normalization for every supported schema and file kind.

mod common;

use common::*;
use gleaner::data::mapping::{Format, MappingFile};
use gleaner::data::reader::FileKind;
use gleaner::data::{LoadOptions, Message, load_dataset};

fn msgs(pairs: &[(&str, &str)]) -> Vec<Message> {
    pairs.iter().map(|(r, c)| Message::new(r, *c)).collect()
}

#[test]
fn alpaca_with_input_system_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.jsonl",
        r#"{"instruction":"Translate","input":"bonjour","output":"hello","system":"Be brief.","history":[["hi","hey"]]}
{"instruction":"Add 2+2","input":"","output":"4"}
"#,
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::Alpaca);
    assert_eq!(l.kind, FileKind::Jsonl);
    let r = &l.records[0];
    assert_eq!(
        r.messages,
        msgs(&[
            ("system", "Be brief."),
            ("user", "hi"),
            ("assistant", "hey"),
            ("user", "Translate\nbonjour"),
            ("assistant", "hello")
        ])
    );
    assert_eq!(r.system.as_deref(), Some("Be brief."));
    // Two exchanges: not single-turn, so no convenience fields.
    assert_eq!(r.instruction, None);
    let r = &l.records[1];
    assert_eq!(r.instruction.as_deref(), Some("Add 2+2"));
    assert_eq!(r.input.as_deref(), Some(""));
    assert_eq!(r.output.as_deref(), Some("4"));
    assert_eq!(r.messages, msgs(&[("user", "Add 2+2"), ("assistant", "4")]));
}

#[test]
fn dolly_maps_context_and_keeps_category() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.json",
        r#"[{"instruction":"Who wrote it?","context":"The book was written by Ana.","response":"Ana.","category":"closed_qa"},
 {"instruction":"Name a fruit","context":"","response":"Apple","category":"open_qa"}]"#,
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::Dolly);
    assert_eq!(l.kind, FileKind::JsonArray);
    let r = &l.records[0];
    assert_eq!(r.instruction.as_deref(), Some("Who wrote it?"));
    assert_eq!(r.input.as_deref(), Some("The book was written by Ana."));
    assert_eq!(r.output.as_deref(), Some("Ana."));
    assert_eq!(
        r.extras,
        vec![("category".to_string(), serde_json::json!("closed_qa"))]
    );
    assert_eq!(
        l.records[1].line, 2,
        "second array element starts on line 2"
    );
}

#[test]
fn sharegpt_conversations_with_system() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "s.jsonl",
        r#"{"conversations":[{"from":"human","value":"Hi"},{"from":"gpt","value":"Hello!"},{"from":"human","value":"Bye"},{"from":"gpt","value":"Bye!"}],"system":"Friendly."}
"#,
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::Sharegpt);
    let r = &l.records[0];
    assert_eq!(r.turns(), 2);
    assert_eq!(r.messages[0], Message::new("system", "Friendly."));
    assert_eq!(r.messages[4], Message::new("assistant", "Bye!"));
    assert_eq!(r.instruction, None);
}

#[test]
fn openai_messages_single_turn_gets_convenience_fields() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "m.jsonl",
        r#"{"id":"x1","messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","content":"A"}]}
{"id":"x2","messages":[{"role":"user","content":[{"type":"text","text":"part one"},{"type":"text","text":"part two"}]},{"role":"assistant","content":"ok"}]}
"#,
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::Messages);
    assert_eq!(l.id_source, "column:id");
    let r = &l.records[0];
    assert_eq!(r.id, "x1");
    assert_eq!(r.system.as_deref(), Some("S"));
    assert_eq!(r.instruction.as_deref(), Some("Q"));
    assert_eq!(r.output.as_deref(), Some("A"));
    assert_eq!(l.records[1].first_user(), "part one\npart two");
}

#[test]
fn preference_prompt_chosen_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        r#"{"prompt":"2+2?","chosen":"4","rejected":"5"}
{"prompt":[{"role":"user","content":"Capital of France?"}],"chosen":[{"role":"assistant","content":"Paris"}],"rejected":[{"role":"assistant","content":"Lyon"}]}
"#,
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::Preference);
    let r = &l.records[0];
    assert_eq!(r.chosen.as_deref(), Some("4"));
    assert_eq!(r.rejected.as_deref(), Some("5"));
    assert_eq!(r.messages, msgs(&[("user", "2+2?"), ("assistant", "4")]));
    let r = &l.records[1];
    assert_eq!(r.first_user(), "Capital of France?");
    assert_eq!(r.chosen.as_deref(), Some("Paris"));
    assert_eq!(r.rejected.as_deref(), Some("Lyon"));
}

#[test]
fn prompt_completion_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "pc.jsonl",
        "{\"prompt\":\"Say hi\",\"completion\":\"hi\"}\n",
    );
    let l = load(&p);
    assert_eq!(l.mapping.format, Format::PromptCompletion);
    assert_eq!(l.records[0].output.as_deref(), Some("hi"));
}

#[test]
fn csv_file_with_quoted_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.csv",
        "instruction,input,output\n\"Write a poem\",,\"Roses\nare red\"\nSum 1 and 2,,3\n",
    );
    let l = load(&p);
    assert_eq!(l.kind, FileKind::Csv);
    assert_eq!(l.mapping.format, Format::Alpaca);
    assert_eq!(l.records[0].output.as_deref(), Some("Roses\nare red"));
    assert_eq!(
        l.records[1].line, 4,
        "record after a two-line field starts on line 4"
    );
}

#[test]
fn parquet_input_with_nested_messages() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    // Build a parquet file through gleaner's own snapshot writer shape.
    let src = write(
        dir.path(),
        "src.jsonl",
        r#"{"id":"a","messages":[{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"}],"category":"x"}
{"id":"b","messages":[{"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}],"category":"y"}
"#,
    );
    let records = load(&src).records;
    let df = gleaner::data::frame::records_to_frame(&records).unwrap();
    let mut df = df.select(["id", "messages", "category"]).unwrap();
    let p = dir.path().join("in.parquet");
    ParquetWriter::new(std::fs::File::create(&p).unwrap())
        .finish(&mut df)
        .unwrap();
    let l = load(&p);
    assert_eq!(l.kind, FileKind::Parquet);
    assert_eq!(l.mapping.format, Format::Messages);
    assert_eq!(l.records[1].id, "b");
    assert_eq!(l.records[1].output.as_deref(), Some("A2"));
    assert_eq!(
        l.records[1].extras,
        vec![("category".into(), serde_json::json!("y"))]
    );
}

#[test]
fn gzip_and_zstd_jsonl() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let text =
        b"{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    let p = write(dir.path(), "x.jsonl.gz", gz.finish().unwrap());
    assert_eq!(load(&p).records.len(), 2);
    let p = write(
        dir.path(),
        "x.jsonl.zst",
        zstd::encode_all(&text[..], 3).unwrap(),
    );
    assert_eq!(load(&p).records[1].output.as_deref(), Some("d"));
}

#[test]
fn explicit_map_overrides_detection() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "custom.jsonl",
        "{\"uid\":\"q-1\",\"question\":\"Why?\",\"answer\":\"Because.\",\"output\":\"decoy\",\"instruction\":\"decoy\"}\n",
    );
    let map = write(
        dir.path(),
        "map.toml",
        "formatting = \"alpaca\"\n[columns]\nid = \"uid\"\nprompt = \"question\"\nresponse = \"answer\"\n",
    );
    let opts = LoadOptions {
        mapping: Some(MappingFile::load(&map).unwrap()),
        ..LoadOptions::default()
    };
    let l = load_dataset(&p, &opts).unwrap();
    let r = &l.records[0];
    assert_eq!(r.id, "q-1");
    assert_eq!(r.instruction.as_deref(), Some("Why?"));
    assert_eq!(r.output.as_deref(), Some("Because."));
}

#[test]
fn sharegpt_tags_from_map() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.jsonl",
        "{\"dialog\":[{\"speaker\":\"asker\",\"text\":\"Hi\"},{\"speaker\":\"bot\",\"text\":\"Yo\"}]}\n",
    );
    let map = write(
        dir.path(),
        "map.toml",
        "formatting = \"sharegpt\"\n[columns]\nmessages = \"dialog\"\n[tags]\nrole_tag = \"speaker\"\ncontent_tag = \"text\"\nuser_tag = \"asker\"\nassistant_tag = \"bot\"\nsystem_tag = \"sys\"\nobservation_tag = \"obs\"\nfunction_tag = \"fn\"\n",
    );
    let opts = LoadOptions {
        mapping: Some(MappingFile::load(&map).unwrap()),
        ..LoadOptions::default()
    };
    let l = load_dataset(&p, &opts).unwrap();
    assert_eq!(
        l.records[0].messages,
        msgs(&[("user", "Hi"), ("assistant", "Yo")])
    );
}

#[test]
fn ids_fall_back_to_stable_content_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let body = "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n{\"instruction\":\"a\",\"output\":\"b\"}\n";
    let p = write(dir.path(), "h.jsonl", body);
    let one = load(&p);
    let two = load(&p);
    let ids: Vec<_> = one.records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        two.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(one.id_source, "hash");
    assert_eq!(ids[0].len(), 16);
    assert_ne!(ids[0], ids[1]);
    // An exact duplicate row is kept, with a distinct id.
    assert_eq!(ids[2], format!("{}-2", ids[0]));
}

#[test]
fn demo_dataset_loads_cleanly() {
    let l = load(&demo_path());
    assert!(l.records.len() >= 100, "{}", l.records.len());
    assert!(l.rejects.is_empty());
    assert!(
        l.records.iter().any(|r| r.turns() >= 3),
        "has long multi-turn chats"
    );
    assert!(l.records.iter().any(|r| {
        r.first_user().chars().any(|c| {
            ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{0400}'..='\u{04ff}').contains(&c)
        })
    }));
}

#[test]
fn repeated_and_escaped_keys_read_as_serde_json_reads_them() {
    // A repeated key keeps its first place and its last value; an escaped key is the
    // same field as its plain spelling; a column mapped to two roles is read by both.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "k.jsonl",
        concat!(
            r#"{"z":1,"instruction":"first","output":"o","tag":"a","instruction":"last","tag":"b"}"#,
            "\n",
            r#"{"instr\u0075ction":"escaped","output":"o2","z":2}"#,
            "\n",
        ),
    );
    let l = load(&p);
    assert_eq!(l.records[0].instruction.as_deref(), Some("last"));
    assert_eq!(
        l.records[0].extras,
        vec![
            ("z".to_string(), serde_json::json!(1)),
            ("tag".to_string(), serde_json::json!("b"))
        ]
    );
    assert_eq!(l.records[1].instruction.as_deref(), Some("escaped"));
    let map = write(
        dir.path(),
        "map.toml",
        "[columns]\nprompt = \"instruction\"\nquery = \"instruction\"\nresponse = \"output\"\n",
    );
    let opts = LoadOptions {
        mapping: Some(MappingFile::load(&map).unwrap()),
        ..LoadOptions::default()
    };
    let l = load_dataset(&p, &opts).unwrap();
    assert_eq!(l.records[1].instruction.as_deref(), Some("escaped"));
    assert_eq!(l.records[1].input.as_deref(), Some("escaped"));
}
