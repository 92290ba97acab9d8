//! The Jobs panel, headless: start a recipe on the open workspace, watch its progress,
//! see the new score columns appear (and `F` on them), cancel a slow run.

mod common;

use std::time::{Duration, Instant};

use common::fake_openai::{FakeServer, Reply, start_with};
use common::*;
use gleaner::tui::action::Action;
use gleaner::tui::app::App;
use gleaner::tui::keymap::Keymap;
use gleaner::tui::state::{Mode, RunOutcome};
use gleaner::tui::theme::Theme;

const RATING: &str =
    "{\"Rarity\": 6, \"Complexity\": 7, \"Informativeness\": 8, \"Overall rating\": 8}";

fn server(delay: Duration) -> (tokio::runtime::Runtime, FakeServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(start_with(move |_| Reply::ok(RATING).delayed(delay)));
    (rt, s)
}

fn open(ws: &gleaner::store::Workspace) -> App {
    let mut app = App::new(ws, Theme::builtin("dark").unwrap(), Keymap::builtin()).unwrap();
    app.dispatch(Action::Resize {
        width: 120,
        height: 36,
    });
    assert!(app.wait_idle(Duration::from_secs(20)));
    app
}

#[test]
fn snapshot_empty_jobs_panel() {
    let (_d, ws) = demo_workspace();
    let mut app = open(&ws);
    app.dispatch(Action::Jobs);
    assert_eq!(app.state.mode, Mode::Jobs);
    insta::assert_snapshot!("jobs_empty", screen(&app));
    app.dispatch(Action::RunRecipe);
    assert_eq!(app.state.mode, Mode::Input);
    let s = screen(&app);
    assert!(s.contains("run recipe: recipe.toml"), "{s}");
    app.dispatch(Action::Back);
    assert_eq!(app.state.mode, Mode::Jobs);
}

#[test]
fn a_recipe_started_in_the_tui_adds_score_columns_when_it_finishes() {
    let (_rt, s) = server(Duration::ZERO);
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "rate.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\nlimit = 30\n",
            s.url
        ),
    );
    let mut app = open(&ws);
    app.dispatch(Action::SetFilter("n_turns == 1".into()));
    assert!(app.wait_idle(Duration::from_secs(20)));
    let filtered = app.state.view.rows.len();
    assert!(!app.state.columns.iter().any(|c| c.name == "ds2.rate.score"));
    app.dispatch(Action::Jobs);
    app.dispatch(Action::StartRecipe(recipe.to_string_lossy().into()));
    assert!(app.wait_idle(Duration::from_secs(60)));
    let run = app.state.runs.last().unwrap();
    assert_eq!(run.outcome, RunOutcome::Done);
    let summary = run.stages[0].summary.as_ref().unwrap();
    assert_eq!((summary.rows, summary.ok), (30, 30));
    assert_eq!(run.stages[0].progress.done, 30);
    let panel = screen(&app);
    assert!(panel.contains("done"), "{panel}");
    assert!(panel.contains("30/30 rows"), "{panel}");
    assert!(panel.contains("rater · rater: 30 requests"), "{panel}");
    // New columns, same filter.
    assert!(
        app.state
            .columns
            .iter()
            .any(|c| c.name == "ds2.rate.score" && c.numeric)
    );
    assert_eq!(app.state.view.rows.len(), filtered);
    assert_eq!(app.state.view.filter.as_deref(), Some("n_turns == 1"));
    app.dispatch(Action::Back);
    app.dispatch(Action::OpenHistogram("ds2.rate.score".into()));
    assert!(app.wait_idle(Duration::from_secs(20)));
    let d = app.state.hist.as_ref().unwrap().dist.clone().unwrap();
    let describe = d.describe.clone().unwrap();
    // Overall 8 compresses to 4 for every rated row.
    assert_eq!((describe.min, describe.max), (Some(4.0), Some(4.0)));
    assert!(describe.n > 0 && describe.n <= 30);
}

#[test]
fn cancelling_a_slow_run_stops_it_and_writes_no_sidecar() {
    let (_rt, s) = server(Duration::from_millis(150));
    let (dir, ws) = demo_workspace();
    let recipe = write(
        dir.path(),
        "slow.toml",
        format!(
            "[llm.rater]\nbase_url = \"{}\"\nmodel = \"stub\"\nconcurrency = 1\n\n[[stage]]\nid = \"ds2.rate\"\nendpoint = \"rater\"\n",
            s.url
        ),
    );
    let mut app = open(&ws);
    app.dispatch(Action::StartRecipe(recipe.to_string_lossy().into()));
    let t = Instant::now();
    while app.state.runs[0]
        .stages
        .first()
        .is_none_or(|l| l.progress.done < 2)
    {
        assert!(t.elapsed() < Duration::from_secs(30));
        app.pump();
        std::thread::sleep(Duration::from_millis(10));
    }
    app.dispatch(Action::RunRecipe);
    assert!(
        app.state
            .status
            .as_ref()
            .is_some_and(|(m, _)| m.contains("a recipe is running")),
        "one run at a time"
    );
    app.dispatch(Action::CancelRun);
    assert_eq!(app.state.runs[0].outcome, RunOutcome::Cancelling);
    assert!(screen(&app).contains("stopping after the requests in flight"));
    assert!(app.wait_idle(Duration::from_secs(30)));
    assert_eq!(app.state.runs[0].outcome, RunOutcome::Interrupted);
    assert!(!ws.dir.join("sidecars/ds2.rate.parquet").exists());
    let done = app.state.runs[0].stages[0].progress.done;
    assert!(done < 104, "stopped early: {done} rows");
    assert!(s.requests.load(std::sync::atomic::Ordering::SeqCst) < 104);
}
