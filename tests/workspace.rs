//! Workspace creation, reopening, durability settings, migrations, export round trips.

mod common;

use common::*;
use gleaner::data::LoadOptions;
use gleaner::data::export::{ExportFormat, export_frame};
use gleaner::data::load_dataset;
use gleaner::store::db::{Db, SCHEMA_VERSION};
use gleaner::store::{Workspace, open_or_import};

#[test]
fn import_creates_the_layout_and_reopen_does_not_reparse() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "train.jsonl",
        std::fs::read(demo_path()).unwrap(),
    );
    let (ws, report) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    assert_eq!(ws.dir, dir.path().join("train.gleaner"));
    assert_eq!(report.imported, report.rows);
    for f in [
        "gleaner.toml",
        "snapshot.parquet",
        "gleaner.db",
        "sidecars",
        "exports",
        "logs",
    ] {
        assert!(ws.dir.join(f).exists(), "missing {f}");
    }
    let toml = std::fs::read_to_string(ws.dir.join("gleaner.toml")).unwrap();
    assert!(toml.contains("format = \"messages\""), "{toml}");
    assert!(
        toml.contains(&format!("schema_version = {SCHEMA_VERSION}")),
        "{toml}"
    );

    // Reopening reads the snapshot, not the source: make the source unreadable garbage.
    std::fs::write(&p, b"garbage that would not parse").unwrap();
    let (again, report) = open_or_import(&p, None, &LoadOptions::default()).unwrap();
    assert!(report.is_none(), "no re-import");
    assert!(again.source_changed());
    assert_eq!(again.row_count().unwrap(), ws.row_count().unwrap());
}

#[test]
fn database_is_wal_with_full_sync_and_an_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n",
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let db = ws.db().unwrap();
    let mode: String = db
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = db
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    let action: String = db
        .conn
        .query_row(
            "SELECT action FROM audit_log ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(action, "import");
    for table in ["runs", "decisions", "votes", "audit_log", "meta"] {
        let n: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "table {table}");
    }
}

#[test]
fn old_database_is_migrated_and_newer_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // A version-0 database (created before any migration) gets every migration.
    rusqlite::Connection::open(&path).unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    db.set_meta("k", "v").unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(
        db.meta("k").unwrap().as_deref(),
        Some("v"),
        "data survives reopening"
    );
    db.conn
        .pragma_update(None, "user_version", SCHEMA_VERSION + 5)
        .unwrap();
    drop(db);
    let err = Db::open(&path).err().unwrap();
    assert!(
        err.message.contains("newer than this gleaner supports"),
        "{}",
        err.message
    );
}

#[test]
fn existing_workspace_needs_force_and_force_keeps_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n",
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    ws.db().unwrap().set_meta("decision", "kept").unwrap();
    let err = Workspace::import(&p, None, &LoadOptions::default(), false)
        .err()
        .unwrap();
    assert!(err.message.contains("already exists"), "{}", err.message);
    write(
        dir.path(),
        "d.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n",
    );
    let (ws, report) = Workspace::import(&p, None, &LoadOptions::default(), true).unwrap();
    assert_eq!(report.imported, 2);
    assert_eq!(ws.row_count().unwrap(), 2);
    assert_eq!(
        ws.db().unwrap().meta("decision").unwrap().as_deref(),
        Some("kept")
    );
}

fn roundtrip(format: ExportFormat, name: &str) {
    let (dir, ws) = demo_workspace();
    let frame = ws.read_frame(None).unwrap();
    let out = dir.path().join(name);
    let report = export_frame(&frame, &out, format).unwrap();
    assert_eq!(report.rows, frame.height());
    let original = load_dataset(&demo_path(), &LoadOptions::default())
        .unwrap()
        .records;
    let again = load_dataset(&out, &LoadOptions::default()).unwrap().records;
    assert_eq!(original.len(), again.len());
    for (a, b) in original.iter().zip(&again) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.messages, b.messages, "{}", a.id);
        assert_eq!(a.system, b.system, "{}", a.id);
        assert_eq!(a.instruction, b.instruction, "{}", a.id);
        assert_eq!(a.input, b.input, "{}", a.id);
        assert_eq!(a.output, b.output, "{}", a.id);
        assert_eq!(a.extras, b.extras, "{}", a.id);
    }
}

#[test]
fn export_round_trip_jsonl() {
    roundtrip(ExportFormat::Jsonl, "out.jsonl");
}

#[test]
fn export_round_trip_parquet() {
    roundtrip(ExportFormat::Parquet, "out.parquet");
}

#[test]
fn export_round_trip_messages_and_sharegpt() {
    roundtrip(ExportFormat::Messages, "m.jsonl");
    roundtrip(ExportFormat::Sharegpt, "s.jsonl");
}

#[test]
fn alpaca_round_trip_keeps_instruction_input_split() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.jsonl",
        "{\"instruction\":\"Translate\",\"input\":\"chat\",\"output\":\"cat\",\"history\":[[\"hi\",\"hello\"]]}\n{\"instruction\":\"Sum\",\"input\":\"1 2\",\"output\":\"3\",\"category\":\"math\"}\n",
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let frame = ws.read_frame(None).unwrap();
    for (format, file) in [
        (ExportFormat::Alpaca, "out/alpaca.jsonl"),
        (ExportFormat::Jsonl, "out/g.jsonl"),
    ] {
        let out = dir.path().join(file);
        export_frame(&frame, &out, format).unwrap();
        let a = load_dataset(&p, &LoadOptions::default()).unwrap().records;
        let b = load_dataset(&out, &LoadOptions::default()).unwrap().records;
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.messages, y.messages);
            assert_eq!(
                (&x.instruction, &x.input, &x.output),
                (&y.instruction, &y.input, &y.output)
            );
            assert_eq!(x.extras, y.extras);
        }
    }
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/dataset_info.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["alpaca"]["formatting"], "alpaca");
    assert_eq!(info["alpaca"]["file_name"], "alpaca.jsonl");
    assert_eq!(info["alpaca"]["columns"]["history"], "history");
}

#[test]
fn sharegpt_export_writes_a_dataset_info_entry_beside_existing_ones() {
    let (dir, ws) = demo_workspace();
    write(
        dir.path(),
        "dataset_info.json",
        "{\"other\": {\"file_name\": \"o.json\"}}",
    );
    let out = dir.path().join("chats.json");
    export_frame(&ws.read_frame(None).unwrap(), &out, ExportFormat::Sharegpt).unwrap();
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("dataset_info.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        info["other"]["file_name"], "o.json",
        "existing entries kept"
    );
    assert_eq!(info["chats"]["formatting"], "sharegpt");
    assert_eq!(info["chats"]["tags"]["user_tag"], "human");
}

#[test]
fn every_row_is_kept_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        "{ \"output\" : \"b\",   \"instruction\":\"a\", \"meta\": {\"nested\": [1, 2]} }",
        "{\"instruction\":\"caf\\u00e9 \\n\",\"output\":\"d\",\"zz\":1.50}",
    ];
    let p = write(
        dir.path(),
        "v.jsonl",
        format!("{}\r\n\n{}\n", lines[0], lines[1]),
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    assert_eq!(ws.raw_row(0).unwrap(), lines[0]);
    assert_eq!(ws.raw_row(1).unwrap(), lines[1]);
    let p = write(
        dir.path(),
        "arr.json",
        "[\n  {\"instruction\": \"x\",\n   \"output\": \"y\"},\n  {\"instruction\":\"z\",\"output\":\"w\"}\n]",
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    assert_eq!(
        ws.raw_row(0).unwrap(),
        "{\"instruction\": \"x\",\n   \"output\": \"y\"}"
    );
    assert_eq!(
        ws.raw_row(1).unwrap(),
        "{\"instruction\":\"z\",\"output\":\"w\"}"
    );
    assert!(ws.raw_row(2).is_err());
}

#[test]
fn verbatim_rows_link_the_dataset_file_and_notice_an_in_place_rewrite() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let text =
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\":\"c\",\"output\":\"d\"}\n";
    let p = write(dir.path(), "plain.jsonl", text);
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let raw = ws.dir.join("source.raw");
    let inode = |path: &std::path::Path| std::fs::metadata(path).unwrap().ino();
    assert_eq!(inode(&raw), inode(&p), "plain JSONL is linked, not copied");
    assert!(ws.config.source.raw_link.is_some());
    assert_eq!(
        ws.raw_row(1).unwrap(),
        "{\"instruction\":\"c\",\"output\":\"d\"}"
    );
    // Rewritten in place (same inode, same size): the linked rows are no longer the
    // imported ones, and gleaner says so instead of showing them.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&p, text.replace('c', "x")).unwrap();
    assert_eq!(inode(&raw), inode(&p));
    let err = Workspace::open(&ws.dir).unwrap().raw_row(1).unwrap_err();
    assert!(err.message.contains("changed in place"), "{}", err.message);
    assert!(err.hint.unwrap_or_default().contains("--force"));

    // A BOM is stripped from the rows, so that file is copied, not linked.
    let p = write(dir.path(), "bom.jsonl", format!("\u{feff}{text}"));
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let raw = ws.dir.join("source.raw");
    assert_ne!(inode(&raw), inode(&p));
    assert!(ws.config.source.raw_link.is_none());
    assert_eq!(std::fs::read_to_string(&raw).unwrap(), text);
    std::fs::write(&p, "changed").unwrap();
    assert_eq!(
        ws.raw_row(0).unwrap(),
        "{\"instruction\":\"a\",\"output\":\"b\"}"
    );
}

#[test]
fn single_turn_conversations_are_stored_once_and_read_back_whole() {
    use gleaner::data::frame::frame_to_records;
    let dir = tempfile::tempdir().unwrap();
    let alpaca = write(
        dir.path(),
        "a.jsonl",
        concat!(
            "{\"instruction\":\"Translate\",\"input\":\"chat\",\"output\":\"cat\",\"system\":\"Be brief.\"}\n",
            "{\"instruction\":\"Name a colour\",\"input\":\"\",\"output\":\"red\",\"system\":\"\"}\n",
            "{\"instruction\":\"\",\"input\":\"only input\",\"output\":\"ok\",\"system\":\"Be brief.\"}\n",
            "{\"instruction\":\"Again\",\"input\":\"x\",\"output\":\"y\",\"system\":\"s\",\"history\":[[\"hi\",\"hello\"]]}\n",
        ),
    );
    let sharegpt = write(
        dir.path(),
        "s.jsonl",
        concat!(
            "{\"conversations\":[{\"from\":\"human\",\"value\":\"two\\nlines\"},{\"from\":\"gpt\",\"value\":\"yes\"}]}\n",
            "{\"conversations\":[{\"from\":\"system\",\"value\":\"sys\"},{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\",\"value\":\"a\"}]}\n",
            "{\"conversations\":[{\"from\":\"human\",\"value\":\"q1\"},{\"from\":\"gpt\",\"value\":\"a1\"},{\"from\":\"human\",\"value\":\"q2\"},{\"from\":\"gpt\",\"value\":\"a2\"}]}\n",
        ),
    );
    // Rows whose conversation is rebuilt from instruction/input/output store none: all
    // but the one with history, and both single exchanges (a leading system turn is
    // the record's `system`), not the two-exchange chat.
    for (path, rebuilt) in [(&alpaca, 3), (&sharegpt, 2)] {
        let ws_dir = dir.path().join(format!(
            "{}.gleaner",
            path.file_stem().unwrap().to_string_lossy()
        ));
        let (ws, _) =
            Workspace::import(path, Some(&ws_dir), &LoadOptions::default(), false).unwrap();
        let frame = ws.read_frame(None).unwrap();
        assert_eq!(
            frame.column("messages").unwrap().null_count(),
            rebuilt,
            "{}",
            path.display()
        );
        // Length and preview columns as from the full conversation.
        let full = gleaner::data::frame::records_to_frame(
            &load_dataset(path, &LoadOptions::default()).unwrap().records,
        )
        .unwrap();
        for col in [
            "n_turns",
            "prompt_chars",
            "response_chars",
            "preview_prompt",
            "preview_response",
        ] {
            assert!(
                frame
                    .column(col)
                    .unwrap()
                    .equals_missing(full.column(col).unwrap()),
                "{col} of {}",
                path.display()
            );
        }
        let want = load_dataset(path, &LoadOptions::default()).unwrap().records;
        let got = frame_to_records(&frame).unwrap();
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            // Content-hash ids: import hashes the compact form to the same id.
            assert_eq!(w.id, g.id);
            assert_eq!(w.messages, g.messages, "{}", w.id);
            assert_eq!(w.system, g.system, "{}", w.id);
            assert_eq!(
                (&w.instruction, &w.input, &w.output),
                (&g.instruction, &g.input, &g.output),
                "{}",
                w.id
            );
        }
    }
}
