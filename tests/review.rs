//! The revision review: the screen (insta snapshots of side by side, word diff, trace
//! and the bulk confirmation), headless approve / reject / edit / undo / redo / bulk
//! against the workspace database, `aido.merge` policies and `export --merged`, and a
//! `kill -9` of the real binary in a pseudo-terminal that loses no acknowledged decision.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::aido_judge::*;
use common::tmux::Tmux;
use common::*;
use gleaner::review::ReviewFilter;
use gleaner::store::Workspace;
use gleaner::store::decisions::{self, ReviewState};
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::state::Mode;
use gleaner::tui::theme::Theme;

/// A workspace where `aido.refine` ran over every scripted branch (4 revisions:
/// WIN1, WIN3, LOSE (lost every round, not proposed), DISAGREE).
fn refined() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, ws, _) = run_refine(ROWS, "");
    (dir, ws)
}

fn app(ws: &Path) -> App {
    let ws = Workspace::open(ws).unwrap();
    let mut app = App::new(&ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.who = "tester".into();
    app.dispatch(Action::Resize {
        width: 120,
        height: 30,
    });
    app.wait_idle(Duration::from_secs(20));
    app.dispatch(Action::Review);
    assert_eq!(app.state.mode, Mode::Review, "{:?}", app.state.status);
    app
}

fn ids(app: &App) -> Vec<String> {
    let v = app.state.review.as_ref().unwrap();
    v.visible.iter().map(|i| v.items[*i].id.clone()).collect()
}

fn current_id(app: &App) -> String {
    app.state
        .review
        .as_ref()
        .unwrap()
        .item()
        .unwrap()
        .id
        .clone()
}

fn db_states(ws: &Path) -> HashMap<String, ReviewState> {
    let db = Workspace::open(ws).unwrap().db().unwrap();
    decisions::current(&db, "review:aido.refine")
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.state()))
        .collect()
}

#[test]
fn snapshots_side_by_side_word_diff_trace_and_bulk_confirmation() {
    let (_dir, ws) = refined();
    let mut app = app(&ws);
    assert_eq!(ids(&app), ["WIN1", "WIN3", "LOSE", "DISAGREE"]);
    app.dispatch(Action::NextItem);
    assert_eq!(current_id(&app), "WIN3");
    let side = screen(&app);
    insta::assert_snapshot!("review_side_by_side_with_trace", side);
    assert!(side.contains("reviewed 0 of 4"));
    assert!(side.contains("r3 B"), "the trace shows the winning round");
    app.dispatch(Action::ToggleDiff);
    insta::assert_snapshot!("review_word_diff", screen(&app));
    app.dispatch(Action::ToggleDiff);
    app.dispatch(Action::ToggleTrace);
    assert!(!screen(&app).contains("round trace"));
    app.dispatch(Action::BulkReject);
    insta::assert_snapshot!("review_bulk_confirmation", screen(&app));
}

#[test]
fn the_table_shows_refine_states_and_scores_and_leaves_long_texts_to_the_reader() {
    let (_dir, ws) = refined();
    let w = Workspace::open(&ws).unwrap();
    let app = App::new(&w, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    let names: Vec<&str> = app.state.columns.iter().map(|c| c.name.as_str()).collect();
    for shown in [
        "aido.refine.state",
        "aido.refine.rounds_used",
        "aido.refine.drifted",
    ] {
        assert!(names.contains(&shown), "{names:?}");
    }
    for hidden in [
        "aido.refine.trace",
        "aido.refine.evaluation",
        "aido.refine.output",
    ] {
        assert!(!names.contains(&hidden), "{names:?}");
    }
}

#[test]
fn decisions_are_in_the_database_before_the_screen_shows_them() {
    let (_dir, ws) = refined();
    let mut app = app(&ws);
    app.dispatch(Action::SetReviewFilter(ReviewFilter::All));
    // Approve WIN1: saved, shown, and the cursor moves on.
    assert_eq!(current_id(&app), "WIN1");
    app.dispatch(Action::Approve);
    assert_eq!(db_states(&ws)["WIN1"], ReviewState::Approved);
    assert_eq!(current_id(&app), "WIN3");
    assert!(screen(&app).contains("reviewed 1 of 4"));
    // Reject WIN3.
    app.dispatch(Action::Reject);
    assert_eq!(db_states(&ws)["WIN3"], ReviewState::Rejected);
    // Edit LOSE through an editor command that rewrites the file.
    assert_eq!(current_id(&app), "LOSE");
    app.editor = Some("sed -i 's/Answer in two sentences/Answer in one line/'".into());
    app.dispatch(Action::EditRevision);
    let db = Workspace::open(&ws).unwrap().db().unwrap();
    let now = decisions::current(&db, "review:aido.refine").unwrap();
    assert_eq!(now["LOSE"].state(), ReviewState::Edited);
    let edit = now["LOSE"].edit.clone().unwrap();
    assert!(
        edit.instruction
            .ends_with("Answer in one line. (revised r3)"),
        "{edit:?}"
    );
    assert!(screen(&app).contains("human-edited"));
    // An editor that changes nothing saves nothing.
    app.editor = Some("true".into());
    app.dispatch(Action::EditRevision);
    assert_eq!(
        decisions::history(&db, "review:aido.refine", "LOSE")
            .unwrap()
            .len(),
        1
    );
    // Undo the edit: a new event puts LOSE back to pending; history keeps both.
    app.dispatch(Action::Undo);
    let h = decisions::history(&db, "review:aido.refine", "LOSE").unwrap();
    let log: Vec<_> = h
        .iter()
        .map(|e| (e.state.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(log, [("edited", "edit"), ("pending", "undo")]);
    assert_eq!(h[0].who, "tester");
    assert!(h[0].seconds_spent.is_some());
    assert!(!screen(&app).contains("human-edited"));
    // Redo brings the edit back, text included.
    app.dispatch(Action::Redo);
    let now = decisions::current(&db, "review:aido.refine").unwrap();
    assert_eq!(now["LOSE"].edit.as_ref(), Some(&edit));
    // Approving an edited item, alone or in bulk, keeps the person's text.
    app.dispatch(Action::Approve);
    app.dispatch(Action::SetReviewFilter(ReviewFilter::Edited));
    app.dispatch(Action::BulkApprove);
    assert!(app.state.review.as_ref().unwrap().confirm.is_none());
    app.dispatch(Action::SetReviewFilter(ReviewFilter::All));
    assert_eq!(
        decisions::history(&db, "review:aido.refine", "LOSE")
            .unwrap()
            .len(),
        3
    );
    // Undo twice more: the edit, then WIN3's rejection.
    app.dispatch(Action::Undo);
    app.dispatch(Action::Undo);
    let states = db_states(&ws);
    assert_eq!(states["WIN3"], ReviewState::Pending);
    assert_eq!(states["WIN1"], ReviewState::Approved);
    // A reopened screen shows what the database holds.
    let app2 = self::app(&ws);
    let v = app2.state.review.as_ref().unwrap();
    let shown: HashMap<_, _> = v.items.iter().map(|i| (i.id.clone(), i.state())).collect();
    assert_eq!(shown["WIN1"], ReviewState::Approved);
    assert_eq!(shown["WIN3"], ReviewState::Pending);
}

#[test]
fn a_decision_about_another_revision_text_does_not_count_and_undo_respects_others() {
    let (_dir, ws) = refined();
    let db = Workspace::open(&ws).unwrap().db().unwrap();
    // An approval recorded for a different revision text of WIN1 (the stage ran again).
    decisions::record(
        &db,
        "review:aido.refine",
        "old",
        &[decisions::Change {
            item_id: "WIN1".into(),
            state: ReviewState::Approved,
            edit: None,
            action: "approve".into(),
            seconds_spent: None,
            revision: Some("0000000000000000".into()),
        }],
    )
    .unwrap();
    let mut a = app(&ws);
    assert_eq!(current_id(&a), "WIN1");
    assert_eq!(
        a.state.review.as_ref().unwrap().item().unwrap().state(),
        ReviewState::Pending
    );
    // A rejects WIN1; B then edits it; A's undo must not overwrite B's edit.
    a.dispatch(Action::Reject);
    let mut b = app(&ws);
    b.who = "bee".into();
    b.editor = Some("sed -i 's/two sentences/one line/'".into());
    b.dispatch(Action::EditRevision);
    assert_eq!(db_states(&ws)["WIN1"], ReviewState::Edited);
    a.dispatch(Action::Undo);
    assert_eq!(db_states(&ws)["WIN1"], ReviewState::Edited);
    assert!(
        a.state
            .status
            .as_ref()
            .unwrap()
            .0
            .contains("WIN1 was changed since")
    );
}

#[test]
fn bulk_decisions_ask_first_and_cover_exactly_the_filter() {
    let (_dir, ws) = refined();
    let mut app = app(&ws);
    app.dispatch(Action::Approve); // WIN1
    app.dispatch(Action::SetReviewFilter(ReviewFilter::Pending));
    assert_eq!(ids(&app), ["WIN3", "LOSE", "DISAGREE"]);
    app.dispatch(Action::BulkReject);
    assert!(screen(&app).contains("Reject all 3 items in filter `pending`?"));
    app.dispatch(Action::Back);
    assert_eq!(db_states(&ws).len(), 1, "cancelled: nothing written");
    app.dispatch(Action::BulkReject);
    app.dispatch(Action::Confirm);
    let states = db_states(&ws);
    assert_eq!(states["WIN1"], ReviewState::Approved);
    for id in ["WIN3", "LOSE", "DISAGREE"] {
        assert_eq!(states[id], ReviewState::Rejected);
    }
    assert!(ids(&app).is_empty(), "nothing pending is left");
    assert!(screen(&app).contains("No items in filter `pending`"));
    app.dispatch(Action::Undo);
    assert_eq!(db_states(&ws)["WIN3"], ReviewState::Pending);
    assert_eq!(ids(&app), ["WIN3", "LOSE", "DISAGREE"]);
    // The state filters.
    app.dispatch(Action::SetReviewFilter(ReviewFilter::AllRoundsLost));
    assert_eq!(ids(&app), ["LOSE"]);
    app.dispatch(Action::SetReviewFilter(ReviewFilter::Approved));
    assert_eq!(ids(&app), ["WIN1"]);
    app.dispatch(Action::SetReviewFilter(ReviewFilter::Drifted));
    assert!(ids(&app).is_empty());
}

fn decide(ws: &Path, choices: &[(&str, ReviewState, Option<&str>)]) {
    let db = Workspace::open(ws).unwrap().db().unwrap();
    let changes: Vec<_> = choices
        .iter()
        .map(|(id, state, edit)| decisions::Change {
            item_id: id.to_string(),
            state: *state,
            edit: edit.map(|e| decisions::Texts {
                instruction: e.into(),
                input: String::new(),
                output: "Human answer.".into(),
            }),
            action: "test".into(),
            seconds_spent: None,
            revision: None,
        })
        .collect();
    decisions::record(&db, "review:aido.refine", "tester", &changes).unwrap();
}

fn jsonl(path: &Path) -> HashMap<String, serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap_or_default().to_string(), v)
        })
        .collect()
}

#[test]
fn merge_refuses_pending_revisions_then_exports_the_reviewed_dataset() {
    let (dir, ws) = refined();
    let merge = write(dir.path(), "merge.toml", "[[stage]]\nid = \"aido.merge\"\n");
    let err = gleaner_err(&["run", merge.to_str().unwrap(), "-w", ws.to_str().unwrap()]);
    assert!(err.contains("3 revision(s) still pending review"), "{err}");
    assert!(err.contains("gleaner review"), "{err}");
    decide(
        &ws,
        &[
            ("WIN1", ReviewState::Approved, None),
            (
                "WIN3",
                ReviewState::Edited,
                Some("List three everyday uses of copper."),
            ),
            ("DISAGREE", ReviewState::Rejected, None),
        ],
    );
    gleaner_ok(&["run", merge.to_str().unwrap(), "-w", ws.to_str().unwrap()]);
    let file = dir.path().join("final.jsonl");
    gleaner_ok(&[
        "export",
        ws.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--format",
        "alpaca",
        "--merged",
        "--provenance",
    ]);
    let text = std::fs::read_to_string(&file).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        ROWS.len(),
        "rejected revisions keep the original row"
    );
    let by_instr = |p: &str| {
        rows.iter()
            .find(|r| r["instruction"].as_str().unwrap().starts_with(p))
            .unwrap()
            .clone()
    };
    let win1 = by_instr("WIN1");
    assert!(
        win1["instruction"]
            .as_str()
            .unwrap()
            .ends_with("(revised r1)")
    );
    assert!(win1["output"].as_str().unwrap().ends_with("In short: yes."));
    assert_eq!(win1["provenance"], "revised");
    let win3 = rows
        .iter()
        .find(|r| r["instruction"] == "List three everyday uses of copper.")
        .unwrap();
    assert_eq!(
        (win3["output"].as_str(), win3["provenance"].as_str()),
        (Some("Human answer."), Some("edited"))
    );
    let dis = by_instr("DISAGREE");
    assert_eq!(
        dis["instruction"],
        "DISAGREE: Describe how a bicycle gear works."
    );
    assert_eq!(dis["provenance"], "original");
    // LOSE lost every round and was never proposed: the original, though pending.
    assert_eq!(
        by_instr("LOSE")["instruction"],
        "LOSE: Name a prime number."
    );
    assert_eq!(by_instr("FAIL")["output"], "bonjour");

    // A decision after the merge makes its result stale: export refuses until it reruns.
    decide(&ws, &[("DISAGREE", ReviewState::Approved, None)]);
    let err = gleaner_err(&[
        "export",
        ws.to_str().unwrap(),
        "-o",
        dir.path().join("stale.jsonl").to_str().unwrap(),
        "--merged",
    ]);
    assert!(err.contains("out of date"), "{err}");
    decide(&ws, &[("DISAGREE", ReviewState::Rejected, None)]);

    // Dropping rejected revisions, through the canonical format.
    let drop = write(
        dir.path(),
        "merge-drop.toml",
        "[[stage]]\nid = \"aido.merge\"\non_rejected = \"drop\"\n",
    );
    gleaner_ok(&["run", drop.to_str().unwrap(), "-w", ws.to_str().unwrap()]);
    let file = dir.path().join("final2.jsonl");
    gleaner_ok(&[
        "export",
        ws.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--merged",
    ]);
    let rows = jsonl(&file);
    assert_eq!(rows.len(), ROWS.len() - 1);
    assert!(!rows.contains_key("DISAGREE"));
    assert!(!rows["WIN1"].as_object().unwrap().contains_key("provenance"));
    let msgs = rows["WIN1"]["messages"].as_array().unwrap();
    assert!(
        msgs[0]["content"]
            .as_str()
            .unwrap()
            .ends_with("(revised r1)"),
        "the conversation is rebuilt too"
    );
}

#[test]
fn kill_9_after_approvals_loses_no_acknowledged_decision() {
    let (_dir, ws) = refined();
    let bin = assert_cmd::cargo::cargo_bin("gleaner");
    let tmux = Tmux::new();
    tmux.start(
        "t",
        &format!("exec {} review {} --as killer", bin.display(), ws.display()),
    );
    assert!(tmux.wait("t", "reviewed 0 of 4"), "{}", tmux.screen("t"));
    for (n, key) in ["a", "x", "a"].iter().enumerate() {
        tmux.keys("t", key);
        // The screen counts a decision only once it is written.
        assert!(
            tmux.wait("t", &format!("reviewed {} of 4", n + 1)),
            "{}",
            tmux.screen("t")
        );
    }
    let pid = tmux.pid("t");
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    let states = db_states(&ws);
    assert_eq!(states.len(), 3);
    assert_eq!(states["WIN1"], ReviewState::Approved);
    assert_eq!(states["WIN3"], ReviewState::Rejected);
    assert_eq!(states["LOSE"], ReviewState::Approved);
    let db = Workspace::open(&ws).unwrap().db().unwrap();
    let ok: String = db
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let who: String = db
        .conn
        .query_row("SELECT DISTINCT who FROM decisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(who, "killer");
    // Reopened, the screen shows the same three decisions.
    tmux.start(
        "again",
        &format!("exec {} review {} --as killer", bin.display(), ws.display()),
    );
    assert!(
        tmux.wait("again", "reviewed 3 of 4"),
        "{}",
        tmux.screen("again")
    );
}
