//! Stage sidecars: written keyed by id, seen as aligned columns by the browser,
//! filters, stats and export.

mod common;

use std::time::Duration;

use assert_cmd::Command;
use common::*;
use gleaner::store::Workspace;
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::theme::Theme;
use polars::prelude::*;

/// A workspace of the demo with a `ds2.rate` sidecar scoring every third row
/// (score = row % 6), in reverse order so alignment by id is exercised.
fn scored() -> (tempfile::TempDir, Workspace, Vec<(String, Option<f64>)>) {
    let (dir, ws) = demo_workspace();
    let ids: Vec<String> = load(&demo_path())
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    let expected: Vec<(String, Option<f64>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), (i % 3 == 0).then_some((i % 6) as f64)))
        .collect();
    let scored: Vec<&(String, Option<f64>)> =
        expected.iter().filter(|(_, s)| s.is_some()).rev().collect();
    let side = df!(
        "id" => scored.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        "score" => scored.iter().map(|(_, s)| s.unwrap()).collect::<Vec<_>>(),
        "status" => scored.iter().map(|_| "ok").collect::<Vec<_>>(),
    )
    .unwrap();
    ws.write_sidecar("ds2.rate", &side).unwrap();
    (dir, ws, expected)
}

#[test]
fn sidecar_columns_align_by_id_with_nulls_for_missing_rows() {
    let (_d, ws, expected) = scored();
    assert_eq!(ws.sidecars(), vec!["ds2.rate".to_string()]);
    let frame = ws.read_frame_with_sidecars(Some(&["id"])).unwrap();
    let scores: Vec<Option<f64>> = frame
        .column("ds2.rate.score")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(scores, expected.iter().map(|(_, s)| *s).collect::<Vec<_>>());
    assert!(frame.column("ds2.rate.status").is_ok());
}

#[test]
fn bad_sidecars_are_refused() {
    let (_d, ws, _) = scored();
    let no_id = df!("score" => [1.0]).unwrap();
    assert!(
        ws.write_sidecar("x", &no_id)
            .unwrap_err()
            .message
            .contains("`id` column")
    );
    let ok = df!("id" => ["a"]).unwrap();
    assert!(
        ws.write_sidecar("../escape", &ok)
            .unwrap_err()
            .message
            .contains("invalid stage id")
    );
}

#[test]
fn browser_shows_filters_and_histograms_sidecar_columns() {
    let (_d, ws, expected) = scored();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 140,
        height: 30,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    assert!(
        app.state
            .columns
            .iter()
            .any(|c| c.name == "ds2.rate.score" && c.numeric)
    );
    app.dispatch(Action::OpenHistogram("ds2.rate.score".into()));
    assert!(app.wait_idle(Duration::from_secs(20)));
    let dist = app.state.hist.as_ref().unwrap().dist.clone().unwrap();
    let d = dist.describe.clone().unwrap();
    assert_eq!(d.n, expected.iter().filter(|(_, s)| s.is_some()).count());
    assert_eq!(
        d.nulls,
        expected.iter().filter(|(_, s)| s.is_none()).count()
    );
    app.dispatch(Action::Back);
    // A filter mixing a sidecar column (in memory) and a full-text column (on disk).
    app.dispatch(Action::SetFilter(
        "`ds2.rate.score` >= 3 and len(output) > 10".into(),
    ));
    assert!(app.wait_idle(Duration::from_secs(20)));
    let records = load(&demo_path()).records;
    let want: Vec<u32> = expected
        .iter()
        .enumerate()
        .filter(|(i, (_, s))| {
            s.is_some_and(|s| s >= 3.0)
                && records[*i]
                    .output
                    .as_ref()
                    .is_some_and(|o| o.chars().count() > 10)
        })
        .map(|(i, _)| i as u32)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(*app.state.view.rows, want);
}

#[test]
fn cli_stats_and_export_use_sidecars() {
    let (d, ws, expected) = scored();
    let log = d.path().join("log");
    let out = Command::cargo_bin("gleaner")
        .unwrap()
        .env("GLEANER_LOG", &log)
        .args(["stats", "--json"])
        .arg(&ws.dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scores: Vec<f64> = expected.iter().filter_map(|(_, s)| *s).collect();
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    assert!((v["numeric"]["ds2.rate.score"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let dest = d.path().join("top.jsonl");
    Command::cargo_bin("gleaner")
        .unwrap()
        .env("GLEANER_LOG", &log)
        .arg("export")
        .arg(&ws.dir)
        .arg("-o")
        .arg(&dest)
        .args(["--filter", "`ds2.rate.score` == 5"])
        .assert()
        .success();
    let text = std::fs::read_to_string(&dest).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|v| {
            assert!(
                v.get("ds2.rate.score").is_none(),
                "scores are not written into records"
            )
        })
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = expected
        .iter()
        .filter(|(_, s)| *s == Some(5.0))
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn the_table_shows_scores_and_the_reader_shows_every_stage_output() {
    let (_d, ws) = demo_workspace();
    let ids: Vec<String> = load(&demo_path())
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    let side = df!(
        "id" => &ids,
        "score" => ids.iter().map(|_| 4i64).collect::<Vec<_>>(),
        "status" => ids.iter().map(|_| "ok").collect::<Vec<_>>(),
        "raw" => ids.iter().map(|id| format!("{{\"Overall rating\": 8}} for {id}")).collect::<Vec<_>>(),
        "latency_ms" => ids.iter().map(|_| 12.5).collect::<Vec<_>>(),
    )
    .unwrap();
    ws.write_sidecar("ds2.rate", &side).unwrap();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 150,
        height: 50,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    let titles: Vec<(&str, &str)> = app
        .state
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.title.as_str()))
        .collect();
    assert!(
        titles.contains(&("ds2.rate.score", "rate.score")),
        "{titles:?}"
    );
    assert!(titles.contains(&("ds2.rate.status", "rate.status")));
    assert!(
        !titles
            .iter()
            .any(|(n, _)| n.ends_with(".raw") || n.ends_with(".latency_ms")),
        "reply bookkeeping stays out of the table: {titles:?}"
    );
    let fields = app.state.reader.fields.join("\n");
    assert!(
        fields.contains(&format!(
            "ds2.rate.raw: {{\"Overall rating\": 8}} for {}",
            ids[0]
        )),
        "{fields}"
    );
    assert!(fields.contains("ds2.rate.latency_ms: 12.5"), "{fields}");
    let backend = ratatui::backend::TestBackend::new(150, 50);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    app.draw(&mut term).unwrap();
    let screen: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(screen.contains("rate.score"), "{screen}");
    assert!(screen.contains("stage outputs"), "{screen}");
    assert!(
        screen.contains("ds2.rate.raw: {\"Overall rating\": 8}"),
        "{screen}"
    );
    // Filters still see the hidden columns.
    app.dispatch(Action::SetFilter("`ds2.rate.latency_ms` > 100".into()));
    assert!(app.wait_idle(Duration::from_secs(20)));
    assert!(app.state.view.rows.is_empty());
}

#[test]
fn many_stage_columns_scroll_sideways_with_the_id_pinned() {
    let (_d, ws) = demo_workspace();
    let ids: Vec<String> = load(&demo_path())
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut cols = vec![Column::new("id".into(), &ids)];
    for k in 0..12 {
        cols.push(Column::new(
            format!("metric_{k:02}").into(),
            ids.iter().map(|_| k as f64).collect::<Vec<_>>(),
        ));
    }
    ws.write_sidecar("many.metrics", &DataFrame::new(ids.len(), cols).unwrap())
        .unwrap();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 90,
        height: 20,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    let screen = |app: &App| {
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(90, 20)).unwrap();
        app.draw(&mut term).unwrap();
        term.backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect::<String>()
    };
    let first = screen(&app);
    assert!(first.contains("metrics.metric_00"), "{first}");
    assert!(!first.contains("metrics.metric_11"));
    assert!(
        first.contains("▶ (h/l)"),
        "says more columns are to the right: {first}"
    );
    for _ in 0..app.state.columns.len() {
        app.dispatch(Action::ColumnRight);
    }
    let last = screen(&app);
    assert!(
        last.contains("response"),
        "the last column is on screen: {last}"
    );
    assert!(last.contains(" id "), "id stays pinned: {last}");
    assert!(!last.contains("metrics.metric_00"), "{last}");
    assert!(last.contains("◀ columns"), "{last}");
}

#[test]
fn stages_named_without_a_dot_are_stage_columns_too() {
    let (_d, ws) = demo_workspace();
    let ids: Vec<String> = load(&demo_path())
        .records
        .into_iter()
        .map(|r| r.id)
        .collect();
    let side = df!(
        "id" => &ids,
        "dim" => ids.iter().map(|_| 384i64).collect::<Vec<_>>(),
        "cached" => ids.iter().map(|_| true).collect::<Vec<_>>(),
        "status" => ids.iter().map(|_| "ok").collect::<Vec<_>>(),
    )
    .unwrap();
    ws.write_sidecar("embed", &side).unwrap();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 150,
        height: 40,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    let names: Vec<&str> = app.state.columns.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"embed.status"), "{names:?}");
    assert!(
        !names.contains(&"embed.cached") && !names.contains(&"embed.dim"),
        "{names:?}"
    );
    let fields = app.state.reader.fields.join("\n");
    assert!(
        fields.contains("embed.dim: 384") && fields.contains("embed.cached: true"),
        "{fields}"
    );
}
