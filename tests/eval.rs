//! Blinded human evaluation through the binary and headless: sessions from two files,
//! seeded sampling, blinding (snapshots show neither sources nor scores; the left/right
//! mapping lives only in the database), voting and its mapping back to A/B, majority,
//! adjudication, reports (JSON, markdown, SVG, PNG), votes moved between workspaces,
//! and three annotator processes voting at once with one killed by `kill -9`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::tmux::Tmux;
use common::*;
use gleaner::eval::session;
use gleaner::eval::votes::{self, Side};
use gleaner::store::Workspace;
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::state::Mode;
use gleaner::tui::theme::Theme;

const N: usize = 8;

/// raw.jsonl and curated.jsonl (same ids; curated answers are longer), a workspace of
/// the raw file, and a session `s1` over all items.
fn setup(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (mut raw, mut cur) = (String::new(), String::new());
    for i in 0..N {
        let cat = if i % 2 == 0 { "qa" } else { "code" };
        raw += &format!(
            "{{\"id\": \"q{i}\", \"instruction\": \"Question {i}?\", \"input\": \"\", \"output\": \"Short {i}.\", \"category\": \"{cat}\"}}\n"
        );
        cur += &format!(
            "{{\"id\": \"q{i}\", \"instruction\": \"Question {i}, answered step by step?\", \"input\": \"\", \"output\": \"A longer answer {i}, with reasons.\", \"category\": \"{cat}\"}}\n"
        );
    }
    let a = write(dir.path(), "raw.jsonl", raw);
    let b = write(dir.path(), "curated.jsonl", cur);
    let ws = dir.path().join("raw.gleaner");
    gleaner_ok(&["import", a.to_str().unwrap(), "-w", ws.to_str().unwrap()]);
    let mut args = vec![
        "eval",
        "new",
        "-w",
        ws.to_str().unwrap(),
        "--name",
        "s1",
        "--a",
        a.to_str().unwrap(),
        "--b",
        b.to_str().unwrap(),
        "--annotators",
        "ana,bo,cy",
        "--adjudicators",
        "lead",
        "--guidelines",
        "",
    ];
    args.extend_from_slice(extra);
    gleaner_ok(&args);
    (dir, ws)
}

fn db(ws: &Path) -> gleaner::store::Db {
    Workspace::open(ws).unwrap().db().unwrap()
}

fn voter(ws: &Path, who: &str) -> App {
    let w = Workspace::open(ws).unwrap();
    let mut app = App::new(&w, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 120,
        height: 30,
    });
    app.wait_idle(Duration::from_secs(20));
    let loaded = app.open_vote("s1", who);
    app.dispatch(loaded);
    assert_eq!(app.state.mode, Mode::Vote, "{:?}", app.state.status);
    app
}

/// Vote `sides` (one per aspect) on the current item and submit it.
fn vote(app: &mut App, sides: [Side; 3]) -> String {
    let id = app
        .state
        .vote
        .as_ref()
        .unwrap()
        .item()
        .unwrap()
        .item_id
        .clone();
    for s in sides {
        app.dispatch(match s {
            Side::Left => Action::VoteLeft,
            Side::Tie => Action::VoteTie,
            Side::Right => Action::VoteRight,
        });
    }
    app.dispatch(Action::Confirm);
    id
}

fn a_on_left(ws: &Path, who: &str, item: &str) -> bool {
    session::placements(&db(ws), "s1", who)
        .unwrap()
        .into_iter()
        .find(|(id, _)| id == item)
        .unwrap()
        .1
        .a_on_left
}

#[test]
fn the_voting_screen_is_blind_and_the_mapping_lives_only_in_the_database() {
    let (_dir, ws) = setup(&[]);
    let app = voter(&ws, "ana");
    let shown = screen(&app);
    insta::assert_snapshot!("vote_screen", shown);
    for leak in [
        "raw", "curated", "original", "revised", "jsonl", "score", "bo:", "cy:", " A ", " B ",
    ] {
        assert!(!shown.contains(leak), "the screen shows {leak:?}:\n{shown}");
    }
    assert!(shown.contains(" Left ") && shown.contains(" Right "));
    // The state behind the screen holds sides, not sources.
    let state = format!("{:?}", app.state.vote);
    assert!(!state.contains("a_on_left") && !state.contains("raw.jsonl"));
    // Placements are coins per item and annotator, and differ between annotators.
    let d = db(&ws);
    let flips: Vec<bool> = ["ana", "bo", "cy"]
        .iter()
        .flat_map(|w| {
            session::placements(&d, "s1", w)
                .unwrap()
                .into_iter()
                .map(|p| p.1.a_on_left)
        })
        .collect();
    assert!(flips.iter().any(|x| *x) && flips.iter().any(|x| !*x));
    let order = |w: &str| -> Vec<String> {
        session::placements(&d, "s1", w)
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect()
    };
    assert_ne!(
        order("ana"),
        order("bo"),
        "item order is shuffled per annotator"
    );
    // The first item on ana's screen is the one her placement puts first.
    let first = &app.state.vote.as_ref().unwrap().item().unwrap();
    assert_eq!(first.item_id, order("ana")[0]);
    let item = first.item_id.trim_start_matches('q');
    let left_is_a = first.left.output.starts_with("Short");
    assert_eq!(left_is_a, a_on_left(&ws, "ana", &format!("q{item}")));
}

#[test]
fn votes_map_back_to_a_and_b_and_the_majority_decides() {
    let (dir, ws) = setup(&[]);
    // Everyone prefers the curated (B) answer on every aspect, whatever side it is on,
    // except cy, who calls `output` a tie.
    for who in ["ana", "bo", "cy"] {
        let mut app = voter(&ws, who);
        for _ in 0..N {
            let id = app
                .state
                .vote
                .as_ref()
                .unwrap()
                .item()
                .unwrap()
                .item_id
                .clone();
            let b_side = if a_on_left(&ws, who, &id) {
                Side::Right
            } else {
                Side::Left
            };
            let out = if who == "cy" { Side::Tie } else { b_side };
            assert_eq!(vote(&mut app, [b_side, b_side, out]), id);
        }
        assert!(screen(&app).contains(&format!("{N} of {N} submitted")));
        assert!(screen(&app).contains("All done"));
    }
    let json: serde_json::Value = serde_json::from_str(&gleaner_ok(&[
        "eval",
        "report",
        "-w",
        ws.to_str().unwrap(),
        "--session",
        "s1",
        "--json",
    ]))
    .unwrap();
    let aspect = |name: &str| {
        json["aspects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["aspect"] == name)
            .unwrap()
            .clone()
    };
    let overall = aspect("overall");
    assert_eq!(overall["win"]["count"], N);
    assert_eq!(overall["lose"]["count"], 0);
    assert_eq!(
        overall["fleiss_kappa"],
        serde_json::Value::Null,
        "one category: undefined"
    );
    assert_eq!(overall["pairwise_agreement"], 1.0);
    let output = aspect("output");
    assert_eq!(output["win"]["count"], N, "2 of 3 is a majority");
    let with: Vec<f64> = output["agreement_with_majority"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[1].as_f64().unwrap())
        .collect();
    assert_eq!(with, [1.0, 1.0, 0.0]);
    assert_eq!(json["lose_probability"]["count"], 0);
    assert!(
        json["lose_probability"]["ci_high"].as_f64().unwrap() > 0.3,
        "Wilson upper bound for 0/8"
    );
    assert_eq!(json["time"].as_array().unwrap().len(), 3);
    assert_eq!(json["time"][0]["submitted"], N);
    // Markdown + SVG + PNG.
    let out = dir.path().join("report");
    gleaner_ok(&[
        "eval",
        "report",
        "-w",
        ws.to_str().unwrap(),
        "--session",
        "s1",
        "--out",
        out.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("![win/tie/lose per aspect](report.svg)"));
    assert!(md.contains("| overall | 8 (100.0%"), "{md}");
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">instruction_input</text>"));
    let png = std::fs::read(out.join("report.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 2_000);
}

#[test]
fn items_without_a_majority_go_to_the_adjudicator_who_sees_every_vote() {
    let (_dir, ws) = setup(&["--sample", "2", "--seed", "5", "--aspects", "overall"]);
    let d = db(&ws);
    let items: Vec<String> = session::load(&d, "s1")
        .unwrap()
        .items
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(items.len(), 2);
    // Item 0: A, tie, B (no majority). Item 1: B, B, A (majority B).
    let plan = [(0, ["lose", "tie", "win"]), (1, ["win", "win", "lose"])];
    for (k, who) in ["ana", "bo", "cy"].iter().enumerate() {
        for (i, verdicts) in &plan {
            let id = &items[*i];
            let left = a_on_left(&ws, who, id);
            let v = gleaner::eval::votes::Verdict::parse(verdicts[k]).unwrap();
            votes::submit(
                &d,
                "s1",
                who,
                id,
                &[("overall".into(), v.to_side(left))],
                None,
                2.0,
            )
            .unwrap();
        }
    }
    let report = gleaner::eval::report::build(&d, "s1").unwrap();
    assert_eq!(
        (report.aspects[0].win.count, report.aspects[0].disputed),
        (1, 1)
    );
    let mut lead = voter(&ws, "lead");
    let v = lead.state.vote.as_ref().unwrap();
    assert_eq!(v.queue.len(), 1, "only the disputed item");
    assert_eq!(v.queue[0].item_id, items[0]);
    let shown = screen(&lead);
    assert!(
        shown.contains("ana: ") && shown.contains("bo: Tie") && shown.contains("cy: "),
        "{shown}"
    );
    // The adjudicator says A (the raw answer) is better, from whichever side it is on.
    let a_side = if a_on_left(&ws, "lead", &items[0]) {
        Side::Left
    } else {
        Side::Right
    };
    lead.dispatch(match a_side {
        Side::Left => Action::VoteLeft,
        _ => Action::VoteRight,
    });
    lead.dispatch(Action::Confirm);
    let report = gleaner::eval::report::build(&d, "s1").unwrap();
    let o = &report.aspects[0];
    assert_eq!(
        (o.win.count, o.lose.count, o.disputed, o.adjudicated),
        (1, 1, 0, 1)
    );
    // The TUI report view shows the same numbers.
    let mut view = voter(&ws, "ana");
    view.dispatch(Action::Back);
    view.state.mode = Mode::Browse;
    view.state.vote = None;
    view.dispatch(Action::ShowEvalReport(Box::new(report.clone())));
    let shown = screen(&view);
    insta::assert_snapshot!("eval_report_tui", shown);
    assert!(
        shown.contains("win     1  50.0%") && shown.contains("lose    1  50.0%"),
        "{shown}"
    );
    // With tie_policy = tie, no adjudicator is needed.
    let (_dir2, ws2) = setup(&[
        "--sample",
        "2",
        "--seed",
        "5",
        "--aspects",
        "overall",
        "--tie-policy",
        "tie",
    ]);
    let d2 = db(&ws2);
    for (k, who) in ["ana", "bo", "cy"].iter().enumerate() {
        let id = &items[0];
        let v = gleaner::eval::votes::Verdict::parse(plan[0].1[k]).unwrap();
        votes::submit(
            &d2,
            "s1",
            who,
            id,
            &[("overall".into(), v.to_side(a_on_left(&ws2, who, id)))],
            None,
            1.0,
        )
        .unwrap();
    }
    let r2 = gleaner::eval::report::build(&d2, "s1").unwrap();
    // The item nobody voted on stays open: the policy rules only on complete votes.
    assert_eq!((r2.aspects[0].tie.count, r2.aspects[0].disputed), (1, 1));
}

#[test]
fn a_submitted_item_is_final_and_skips_and_comments_work() {
    let (_dir, ws) = setup(&[]);
    let mut app = voter(&ws, "ana");
    let first = app
        .state
        .vote
        .as_ref()
        .unwrap()
        .item()
        .unwrap()
        .item_id
        .clone();
    app.dispatch(Action::SkipItem);
    assert_ne!(
        app.state.vote.as_ref().unwrap().item().unwrap().item_id,
        first
    );
    // Submitting with an aspect missing is refused, and nothing is written.
    app.dispatch(Action::VoteLeft);
    app.dispatch(Action::Confirm);
    assert!(
        app.state
            .status
            .as_ref()
            .unwrap()
            .0
            .contains("missing: instruction_input, output")
    );
    assert!(votes::votes(&db(&ws), "s1").unwrap().is_empty());
    // Change a vote before submitting: the last choice counts.
    app.dispatch(Action::PrevAspect);
    app.dispatch(Action::VoteRight);
    app.dispatch(Action::VoteTie);
    app.dispatch(Action::VoteTie);
    app.dispatch(Action::Comment);
    for c in "both fine".chars() {
        app.dispatch(Action::InputChar(c));
    }
    app.dispatch(Action::Confirm);
    app.dispatch(Action::Confirm);
    let v = votes::votes(&db(&ws), "s1").unwrap();
    assert_eq!(v.len(), 3);
    let overall = v.iter().find(|x| x.aspect == "overall").unwrap();
    assert_eq!(overall.choice, Side::Right);
    assert_eq!(overall.comment.as_deref(), Some("both fine"));
    let err = votes::submit(
        &db(&ws),
        "s1",
        "ana",
        &v[0].item_id,
        &[("overall".into(), Side::Left)],
        None,
        1.0,
    )
    .unwrap_err();
    assert!(err.contains("already submitted"));
    // Someone not in the session is refused.
    let w = Workspace::open(&ws).unwrap();
    let mut other = App::new(&w, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    match other.open_vote("s1", "mallory") {
        Action::VoteFailed(msg) => assert!(msg.contains("not in session `s1`"), "{msg}"),
        a => panic!("{a:?}"),
    }
}

#[test]
fn votes_move_between_workspaces_idempotently_and_conflicts_are_refused() {
    let (dir, ws) = setup(&[]);
    let copy = dir.path().join("copy.gleaner");
    Command::new("cp")
        .args(["-r", ws.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    let mut app = voter(&ws, "bo");
    for _ in 0..3 {
        vote(&mut app, [Side::Left, Side::Tie, Side::Right]);
    }
    let file = dir.path().join("bo.votes.jsonl");
    let out = gleaner_ok(&[
        "eval",
        "export-votes",
        "-w",
        ws.to_str().unwrap(),
        "--session",
        "s1",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("wrote 9 votes"), "{out}");
    let imported = gleaner_ok(&[
        "eval",
        "import-votes",
        "-w",
        copy.to_str().unwrap(),
        file.to_str().unwrap(),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(
        (r["imported"].as_u64(), r["unchanged"].as_u64()),
        (Some(9), Some(0))
    );
    let again: serde_json::Value = serde_json::from_str(&gleaner_ok(&[
        "eval",
        "import-votes",
        "-w",
        copy.to_str().unwrap(),
        file.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        (again["imported"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(9))
    );
    let strip = |mut v: Vec<votes::Vote>| {
        v.iter_mut()
            .for_each(|x| x.seconds_spent = x.seconds_spent.map(|s| (s * 1e3).round()));
        v
    };
    assert_eq!(
        strip(votes::votes(&db(&copy), "s1").unwrap()),
        strip(votes::votes(&db(&ws), "s1").unwrap())
    );
    // The copy resumes bo where the original left off.
    let resumed = voter(&copy, "bo");
    assert_eq!(resumed.state.vote.as_ref().unwrap().submitted, 3);
    // A file that disagrees with what is here: nothing imported, every conflict named.
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen("\"choice\":\"left\"", "\"choice\":\"right\"", 2);
    let bad = write(dir.path(), "bad.jsonl", &changed);
    let extra = text
        .lines()
        .nth(1)
        .unwrap()
        .replace("\"annotator\":\"bo\"", "\"annotator\":\"cy\"");
    let bad_plus = write(dir.path(), "bad_plus.jsonl", format!("{changed}{extra}\n"));
    for f in [&bad, &bad_plus] {
        let err = gleaner_err(&[
            "eval",
            "import-votes",
            "-w",
            copy.to_str().unwrap(),
            f.to_str().unwrap(),
        ]);
        assert!(
            err.contains("2 conflicting vote(s)") && err.contains("here left, in the file right"),
            "{err}"
        );
    }
    assert_eq!(
        votes::votes(&db(&copy), "s1").unwrap().len(),
        9,
        "nothing imported"
    );
    // Votes of another session with the same name are refused.
    let (_d3, other) = setup(&["--seed", "99"]);
    let err = gleaner_err(&[
        "eval",
        "import-votes",
        "-w",
        other.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(err.contains("belong to another session"), "{err}");
}

#[test]
fn a_session_can_compare_two_versions_inside_the_workspace() {
    let (_dir, ws, _) = common::aido_judge::run_refine(common::aido_judge::ROWS, "");
    let out = gleaner_ok(&[
        "eval",
        "new",
        "-w",
        ws.to_str().unwrap(),
        "--name",
        "cols",
        "--a-stage",
        "snapshot",
        "--b-stage",
        "aido.refine",
    ]);
    // Rows the stage left as they were (failed, unchanged, no verdict) compare equal
    // and are left out.
    assert!(out.contains("4 of 4 items"), "{out}");
    let s = session::load(&db(&ws), "cols").unwrap();
    let mut ids: Vec<&str> = s.items.iter().map(|i| i.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["DISAGREE", "LOSE", "WIN1", "WIN3"]);
    let win1 = s.items.iter().find(|i| i.id == "WIN1").unwrap();
    assert_eq!(
        win1.a.instruction,
        "WIN1: Explain why the sky looks blue during the day."
    );
    assert!(win1.b.instruction.ends_with("(revised r1)"));
    assert_eq!(
        (s.config.a_label.as_str(), s.config.b_label.as_str()),
        ("snapshot", "aido.refine")
    );
    // From the refine run: only revisions that would ship (LOSE was not proposed).
    let out = gleaner_ok(&[
        "eval",
        "new",
        "-w",
        ws.to_str().unwrap(),
        "--name",
        "refined",
    ]);
    assert!(out.contains("3 of 3 items"), "{out}");
    let err = gleaner_err(&[
        "eval",
        "new",
        "-w",
        ws.to_str().unwrap(),
        "--name",
        "x",
        "--a-stage",
        "snapshot",
        "--b-stage",
        "nope",
    ]);
    assert!(
        err.contains("`nope` has no instruction, input or output columns"),
        "{err}"
    );
}

#[test]
fn sampling_is_seeded_and_stratified() {
    let (_d1, ws1) = setup(&["--sample", "4", "--seed", "3", "--stratify", "category"]);
    let (_d2, ws2) = setup(&["--sample", "4", "--seed", "3", "--stratify", "category"]);
    let ids = |ws: &Path| -> Vec<String> {
        session::load(&db(ws), "s1")
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.id)
            .collect()
    };
    assert_eq!(ids(&ws1), ids(&ws2));
    let s = session::load(&db(&ws1), "s1").unwrap();
    let qa = s
        .items
        .iter()
        .filter(|i| i.stratum.as_deref() == Some("qa"))
        .count();
    assert_eq!((s.items.len(), qa), (4, 2));
}

/// How many submissions the screen acknowledges ("k of N submitted").
fn acknowledged(screen: &str) -> Option<usize> {
    let at = screen.find(&format!(" of {N} submitted"))?;
    screen[..at].rsplit(' ').next()?.parse().ok()
}

#[test]
fn three_annotators_vote_at_once_and_a_kill_9_loses_no_acknowledged_vote() {
    let (_dir, ws) = setup(&[]);
    let bin = assert_cmd::cargo::cargo_bin("gleaner");
    let tmux = Tmux::new();
    let who = ["ana", "bo", "cy"];
    for w in who {
        tmux.start(
            w,
            &format!(
                "exec {} eval annotate -w {} --session s1 --annotator {w}",
                bin.display(),
                ws.display()
            ),
        );
    }
    for w in who {
        assert!(
            tmux.wait(w, &format!("0 of {N} submitted")),
            "{}",
            tmux.screen(w)
        );
    }
    // A "random" moment for bo's death: after 2..=5 submissions, mid-way into the next item.
    let kill_after = 2
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize
            % 4);
    let mut done = [0usize; 3];
    let mut killed = false;
    while done
        .iter()
        .enumerate()
        .any(|(k, d)| *d < N && !(k == 1 && killed))
    {
        for (k, w) in who.iter().enumerate() {
            if done[k] >= N || (k == 1 && killed) {
                continue;
            }
            if k == 1 && done[k] == kill_after {
                tmux.keys(w, "1");
                tmux.keys(w, "2");
                let pid = tmux.pid(w);
                assert!(
                    Command::new("kill")
                        .args(["-9", &pid])
                        .status()
                        .unwrap()
                        .success()
                );
                killed = true;
                continue;
            }
            for key in ["1", "2", "3", "Enter"] {
                tmux.keys(w, key);
            }
            done[k] += 1;
            assert!(
                tmux.wait(w, &format!("{} of {N} submitted", done[k])),
                "{w}: {}",
                tmux.screen(w)
            );
        }
    }
    let d = db(&ws);
    let all = votes::votes(&d, "s1").unwrap();
    for (k, w) in who.iter().enumerate() {
        let mine: Vec<_> = all.iter().filter(|v| v.annotator == *w).collect();
        assert_eq!(
            mine.len(),
            done[k] * 3,
            "{w}: every acknowledged item, three aspects each"
        );
        assert!(mine.iter().all(|v| match v.aspect.as_str() {
            "overall" => v.choice == Side::Left,
            "instruction_input" => v.choice == Side::Tie,
            _ => v.choice == Side::Right,
        }));
        assert_eq!(votes::submitted(&d, "s1", w).unwrap().len(), done[k]);
    }
    let dupes: i64 = d.conn.query_row(
        "SELECT COUNT(*) FROM (SELECT 1 FROM votes GROUP BY session, item_id, annotator, aspect HAVING COUNT(*) > 1)",
        [],
        |r| r.get(0),
    ).unwrap();
    assert_eq!(dupes, 0);
    let ok: String = d
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // bo comes back where the database says, and finishes.
    tmux.start(
        "bo2",
        &format!(
            "exec {} eval annotate -w {} --session s1 --annotator bo",
            bin.display(),
            ws.display()
        ),
    );
    assert!(
        tmux.wait("bo2", &format!("{kill_after} of {N} submitted")),
        "{}",
        tmux.screen("bo2")
    );
    assert_eq!(acknowledged(&tmux.screen("bo2")), Some(kill_after));
}
