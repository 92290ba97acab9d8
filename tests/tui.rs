//! The TUI, headless: actions in, state and rendered screens out (ratatui TestBackend +
//! insta snapshots). Background jobs run for real against a workspace built from the
//! demo dataset; `wait_idle` waits for them like csvlens's `wait_internal`.

mod common;

use std::time::Duration;

use common::*;
use gleaner::data::LoadOptions;
use gleaner::data::load_dataset;
use gleaner::data::record::Record;
use gleaner::store::Workspace;
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::state::Mode;
use gleaner::tui::theme::Theme;

struct Fixture {
    _dir: tempfile::TempDir,
    app: App,
    records: Vec<Record>,
}

fn fixture() -> Fixture {
    let (dir, ws) = demo_workspace();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 110,
        height: 32,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    let records = load_dataset(&demo_path(), &LoadOptions::default())
        .unwrap()
        .records;
    Fixture {
        _dir: dir,
        app,
        records,
    }
}

fn act(app: &mut App, actions: impl IntoIterator<Item = Action>) {
    for a in actions {
        app.dispatch(a);
        assert!(
            app.wait_idle(Duration::from_secs(20)),
            "jobs did not finish"
        );
    }
}

fn view_ids(f: &Fixture) -> Vec<String> {
    f.app
        .state
        .view
        .rows
        .iter()
        .map(|r| f.records[*r as usize].id.clone())
        .collect()
}

fn row_of(f: &Fixture, id: &str) -> usize {
    f.records.iter().position(|r| r.id == id).unwrap()
}

#[test]
fn snapshot_browser() {
    let f = fixture();
    insta::assert_snapshot!("browser", screen(&f.app));
}

#[test]
fn snapshot_reader_with_multi_turn_chat() {
    let mut f = fixture();
    // demo-068: a long chat with a system prompt and four exchanges.
    let pos = row_of(&f, "demo-068");
    act(&mut f.app, [Action::Select(pos), Action::ZoomReader]);
    assert_eq!(f.app.state.mode, Mode::Reader);
    let rec = f.app.state.reader.record.clone().expect("record loaded");
    assert_eq!(rec.id, "demo-068");
    assert!(rec.turns() >= 4);
    let s = screen(&f.app);
    assert!(
        s.contains("▌ system") && s.contains("▌ user · turn 1"),
        "{s}"
    );
    insta::assert_snapshot!("reader_multi_turn", s);
    // Scrolling reaches the fourth exchange.
    act(&mut f.app, std::iter::repeat_n(Action::ReaderPageDown, 12));
    assert!(screen(&f.app).contains("turn 4") || screen(&f.app).contains("[100%]"));
}

#[test]
fn snapshot_reader_code_block() {
    let mut f = fixture();
    let pos = row_of(&f, "demo-010");
    act(&mut f.app, [Action::Select(pos)]);
    let s = screen(&f.app);
    assert!(
        s.contains("│ ```python") || s.contains("│ def "),
        "code block drawn with a gutter:\n{s}"
    );
    insta::assert_snapshot!("reader_code", s);
}

#[test]
fn snapshot_histogram_and_help() {
    let mut f = fixture();
    act(&mut f.app, [Action::OpenHistogram("category".into())]);
    let s = screen(&f.app);
    assert!(s.contains("open_qa") && s.contains("distinct"), "{s}");
    insta::assert_snapshot!("histogram_category", s);
    act(
        &mut f.app,
        [Action::Back, Action::OpenHistogram("response_chars".into())],
    );
    let s = screen(&f.app);
    for k in ["mean", "std", "25%", "50%", "75%", "max", "nulls"] {
        assert!(s.contains(k), "describe shows {k}:\n{s}");
    }
    insta::assert_snapshot!("histogram_numeric", s);
    act(&mut f.app, [Action::Back, Action::Help]);
    let s = screen(&f.app);
    assert!(
        s.contains("Histogram / frequencies of focused column"),
        "{s}"
    );
    insta::assert_snapshot!("help", s);
}

#[test]
fn search_finds_rows_in_full_text_and_jumps() {
    let mut f = fixture();
    act(&mut f.app, [Action::SetSearch("sydney".into())]);
    let expected: Vec<u32> = f
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.messages
                .iter()
                .any(|m| m.content.to_lowercase().contains("sydney"))
        })
        .map(|(i, _)| i as u32)
        .collect();
    assert!(!expected.is_empty());
    let got = f
        .app
        .state
        .search
        .as_ref()
        .unwrap()
        .matches
        .clone()
        .unwrap();
    assert_eq!(*got, expected);
    assert_eq!(
        f.app.state.current_row(),
        Some(expected[0]),
        "cursor jumps to the first match"
    );
    // Case-sensitive when the query has capitals.
    act(&mut f.app, [Action::SetSearch("SYDNEY".into())]);
    assert!(
        f.app
            .state
            .search
            .as_ref()
            .unwrap()
            .matches
            .as_ref()
            .unwrap()
            .is_empty()
    );
    // n cycles through matches of a broader query.
    act(
        &mut f.app,
        [Action::SetSearch("python".into()), Action::Top],
    );
    let matches = f
        .app
        .state
        .search
        .as_ref()
        .unwrap()
        .matches
        .clone()
        .unwrap();
    assert!(matches.len() >= 2);
    act(&mut f.app, [Action::SearchNext]);
    assert_eq!(
        f.app.state.current_row(),
        Some(matches[0]).filter(|m| *m != 0).or(Some(matches[1]))
    );
    act(&mut f.app, [Action::SearchNext, Action::SearchPrev]);
    assert!(matches.contains(&f.app.state.current_row().unwrap()));
    let s = screen(&f.app);
    assert!(s.contains("/python"), "title shows the search");
}

#[test]
fn filter_expression_selects_exactly_the_matching_rows() {
    let mut f = fixture();
    act(
        &mut f.app,
        [Action::SetFilter(
            "len(output) < 200 and category == \"general_qa\"".into(),
        )],
    );
    let expected: Vec<String> = f
        .records
        .iter()
        .filter(|r| {
            r.output.as_ref().is_some_and(|o| o.chars().count() < 200)
                && r.extras
                    .iter()
                    .any(|(k, v)| k == "category" && v == "general_qa")
        })
        .map(|r| r.id.clone())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(view_ids(&f), expected);
    assert!(screen(&f.app).contains("filter: len(output) < 200"));
    // Undo restores the full view, redo the filter.
    act(&mut f.app, [Action::Undo]);
    assert_eq!(f.app.state.view.rows.len(), f.records.len());
    act(&mut f.app, [Action::Redo]);
    assert_eq!(view_ids(&f), expected);
}

#[test]
fn bad_filter_reopens_the_editor_with_the_error() {
    let mut f = fixture();
    act(&mut f.app, [Action::SetFilter("len(outptu) < 3".into())]);
    assert_eq!(f.app.state.mode, Mode::Input);
    let err = f.app.state.input.as_ref().unwrap().error.clone().unwrap();
    assert!(err.contains("unknown column `outptu`"), "{err}");
    assert_eq!(
        f.app.state.view.rows.len(),
        f.records.len(),
        "view unchanged"
    );
    // Typing through the input mode fixes it.
    for _ in 0.."len(outptu) < 3".len() {
        f.app.dispatch(Action::InputBackspace);
    }
    for c in "n_turns >= 3".chars() {
        f.app.dispatch(Action::InputChar(c));
    }
    act(&mut f.app, [Action::Confirm]);
    assert_eq!(f.app.state.mode, Mode::Browse);
    let expected = f.records.iter().filter(|r| r.turns() >= 3).count();
    assert_eq!(f.app.state.view.rows.len(), expected);
}

#[test]
fn sort_by_column_both_ways_and_keeps_the_cursor_row() {
    let mut f = fixture();
    let pos = row_of(&f, "demo-013");
    act(&mut f.app, [Action::Select(pos)]);
    act(
        &mut f.app,
        [Action::SortBy {
            column: "response_chars".into(),
            descending: true,
        }],
    );
    let lens: Vec<usize> = f
        .app
        .state
        .view
        .rows
        .iter()
        .map(|r| f.records[*r as usize].chars_of_role("assistant"))
        .collect();
    assert!(lens.windows(2).all(|w| w[0] >= w[1]), "{lens:?}");
    assert_eq!(
        f.app.state.current_row(),
        Some(pos as u32),
        "cursor stays on its row"
    );
    // `[` on the focused column sorts ascending.
    let col = f
        .app
        .state
        .columns
        .iter()
        .position(|c| c.name == "prompt_chars")
        .unwrap();
    f.app.state.col_focus = col;
    act(&mut f.app, [Action::SortAsc]);
    let lens: Vec<usize> = f
        .app
        .state
        .view
        .rows
        .iter()
        .map(|r| f.records[*r as usize].chars_of_role("user"))
        .collect();
    assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
    assert!(screen(&f.app).contains("p.len ▲"));
}

#[test]
fn histogram_drill_down_filters_to_the_bin() {
    let mut f = fixture();
    act(&mut f.app, [Action::OpenHistogram("category".into())]);
    let dist = f.app.state.hist.as_ref().unwrap().dist.clone().unwrap();
    let coding = dist.bins.iter().position(|b| b.label == "coding").unwrap();
    let count = dist.bins[coding].count;
    let expected = f
        .records
        .iter()
        .filter(|r| {
            r.extras
                .iter()
                .any(|(k, v)| k == "category" && v == "coding")
        })
        .count();
    assert_eq!(count, expected);
    for _ in 0..coding {
        f.app.dispatch(Action::Down);
    }
    act(&mut f.app, [Action::Confirm]);
    assert_eq!(f.app.state.mode, Mode::Browse);
    assert_eq!(f.app.state.view.rows.len(), count);
    // A numeric histogram on the filtered view stacks its bin onto the filter.
    act(&mut f.app, [Action::OpenHistogram("n_turns".into())]);
    let bins = f
        .app
        .state
        .hist
        .as_ref()
        .unwrap()
        .dist
        .clone()
        .unwrap()
        .bins
        .clone();
    assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), count);
    act(&mut f.app, [Action::Confirm]);
    let filter = f.app.state.view.filter.clone().unwrap();
    assert!(
        filter.starts_with("(category == \"coding\") and (n_turns =="),
        "{filter}"
    );
    assert_eq!(f.app.state.view.rows.len(), bins[0].count);
}

#[test]
fn marks_and_export_marked() {
    let mut f = fixture();
    act(
        &mut f.app,
        [
            Action::Select(2),
            Action::ToggleMark,
            Action::Select(5),
            Action::ToggleMark,
        ],
    );
    assert_eq!(
        f.app.state.marks.iter().copied().collect::<Vec<_>>(),
        vec![2, 5]
    );
    act(&mut f.app, [Action::ExportMarked]);
    let (msg, _) = f.app.state.status.clone().unwrap();
    assert!(msg.starts_with("exported 2 rows to "), "{msg}");
    let path = msg.trim_start_matches("exported 2 rows to ");
    let text = std::fs::read_to_string(path).unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec![f.records[2].id.clone(), f.records[5].id.clone()]);
}

#[test]
fn actions_serialize_for_keymaps_and_replay() {
    let actions = vec![
        Action::Down,
        Action::SetFilter("n_turns > 1".into()),
        Action::SortBy {
            column: "id".into(),
            descending: true,
        },
        Action::Resize {
            width: 80,
            height: 24,
        },
    ];
    let json = serde_json::to_string(&actions).unwrap();
    let back: Vec<Action> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, actions);
    assert_eq!(Action::from_name("page_down"), Some(Action::PageDown));
}

#[test]
fn resize_keeps_the_cursor_visible() {
    let mut f = fixture();
    act(
        &mut f.app,
        [
            Action::Bottom,
            Action::Resize {
                width: 60,
                height: 12,
            },
        ],
    );
    let s = screen(&f.app);
    let last = f.records.last().unwrap().id.clone();
    assert!(s.contains(&last), "{s}");
}

#[test]
fn reader_scroll_stops_at_the_end_and_comes_back_at_once() {
    let mut f = fixture();
    let pos = row_of(&f, "demo-068");
    act(&mut f.app, [Action::Select(pos), Action::ZoomReader]);
    act(&mut f.app, std::iter::repeat_n(Action::ReaderPageDown, 200));
    let bottom = f.app.state.reader.scroll;
    assert!(screen(&f.app).contains("[100%]"));
    act(&mut f.app, [Action::ReaderUp]);
    assert_eq!(
        f.app.state.reader.scroll,
        bottom - 1,
        "one key scrolls back immediately"
    );
}

#[test]
fn empty_view_survives_every_key() {
    let mut f = fixture();
    act(
        &mut f.app,
        [
            Action::SetSearch("composting".into()),
            Action::SetFilter("n_turns > 100".into()),
        ],
    );
    assert!(f.app.state.view.rows.is_empty());
    act(
        &mut f.app,
        [
            Action::Down,
            Action::Up,
            Action::PageDown,
            Action::Bottom,
            Action::SearchNext,
            Action::SearchPrev,
            Action::ToggleMark,
            Action::ZoomReader,
            Action::ReaderPageDown,
            Action::Back,
            Action::SortAsc,
            Action::Histogram,
            Action::Confirm,
            Action::Back,
            Action::ExportMarked,
            Action::Resize {
                width: 20,
                height: 4,
            },
        ],
    );
    let s = screen(&f.app);
    assert!(s.contains("gleaner"), "{s}");
    act(
        &mut f.app,
        [Action::Resize {
            width: 110,
            height: 32,
        }],
    );
    let s = screen(&f.app);
    assert!(s.contains("no rows match the filter"), "{s}");
}

#[test]
fn a_huge_field_is_read_with_its_line_count_cached() {
    let dir = tempfile::tempdir().unwrap();
    let big = "lorem ipsum dolor sit amet ".repeat(80_000); // ~2 MB
    let p = write(
        dir.path(),
        "big.jsonl",
        format!(
            "{{\"instruction\":\"summarize\",\"output\":\"{big}\"}}\n{{\"instruction\":\"b\",\"output\":\"c\"}}\n"
        ),
    );
    let (ws, _) = Workspace::import(&p, None, &LoadOptions::default(), false).unwrap();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    act(
        &mut app,
        [
            Action::Resize {
                width: 100,
                height: 30,
            },
            Action::ZoomReader,
        ],
    );
    let (width, lines) = app
        .state
        .reader
        .lines
        .expect("counted once the record arrived");
    assert_eq!(width, 97);
    assert!(lines > 20_000, "{lines}");
    act(&mut app, std::iter::repeat_n(Action::ReaderPageDown, 3));
    assert_eq!(app.state.reader.scroll, 3 * 15);
    let s = screen(&app);
    assert!(s.contains("lorem ipsum") && s.contains("[0%]"), "{s}");
    // A narrower pane recounts.
    act(
        &mut app,
        [Action::Resize {
            width: 60,
            height: 30,
        }],
    );
    assert_eq!(app.state.reader.lines.unwrap().0, 57);
}
