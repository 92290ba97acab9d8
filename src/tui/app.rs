//! The app: state + background jobs, driven by actions. `run_terminal` adds the real
//! terminal (raw mode, alternate screen, mouse) and restores it on every exit path.

use std::io::Stdout;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind, MouseEventKind};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};

use super::action::Action;
use super::jobs::{JobRequest, Jobs, Snapshot};
use super::keymap::{Keymap, key_name};
use super::reducer::{Effect, update};
use super::review::ReviewOp;
use super::state::{AppState, Mode, browse_column_names};
use super::theme::Theme;
use crate::error::{UserError, file_error};
use crate::review::{ReviewSession, edit_file};
use crate::store::Workspace;
use crate::store::decisions::{ReviewState, Texts};

/// Rows read synchronously so the first frame appears before the full load.
pub const FIRST_ROWS: usize = 1_000;

pub struct App {
    pub state: AppState,
    pub jobs: Jobs,
    pub workspace: std::path::PathBuf,
    /// Who decisions are recorded as.
    pub who: String,
    /// The editor command for edits (default `$VISUAL`, `$EDITOR`, then `vi`).
    pub editor: Option<String>,
    /// Decisions of the open review, written through here.
    pub review: Option<ReviewSession>,
    /// The database the open voting screen submits through.
    pub vote_db: Option<crate::store::Db>,
    /// A real terminal is in use: leave it for the editor and redraw fully after.
    pub in_terminal: bool,
    pub needs_clear: bool,
}

impl App {
    pub fn new(ws: &Workspace, theme: Theme, keymap: Keymap) -> Result<Self, UserError> {
        let total = ws.row_count()?;
        let snapshot = Snapshot {
            workspace: ws.dir.clone(),
            path: ws.snapshot_path(),
            exports: ws.exports_dir(),
            rows: total,
            sidecars: ws.sidecars().iter().map(|s| ws.sidecar_path(s)).collect(),
        };
        let schema = snapshot
            .schema()
            .map_err(|e| file_error(&snapshot.path, format!("cannot read the snapshot: {e}")))?;
        let columns = browse_column_names(&schema);
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        let first = ws.read_rows(0, FIRST_ROWS.min(total), Some(&cols))?;
        let first = snapshot.with_sidecars(first).map_err(UserError::new)?;
        let state = AppState::new(ws.name(), total, first, ws.sidecars(), keymap, theme);
        let mut app = Self {
            state,
            jobs: Jobs::new(snapshot),
            workspace: ws.dir.clone(),
            who: crate::util::current_user(),
            editor: None,
            review: None,
            vote_db: None,
            in_terminal: false,
            needs_clear: false,
        };
        if app.state.loading {
            app.jobs.start(JobRequest::Table { columns });
        }
        app.dispatch(Action::Top);
        Ok(app)
    }

    pub fn dispatch(&mut self, action: Action) {
        for effect in update(&mut self.state, action) {
            match effect {
                Effect::Start(req) => self.jobs.start(req),
                Effect::Cancel(kind) => self.jobs.cancel(kind),
                Effect::OpenReview(stage) => {
                    let next = self.open_review(&stage);
                    self.dispatch(next);
                }
                Effect::SubmitVotes {
                    item_id,
                    votes,
                    comment,
                    seconds,
                } => {
                    let next = self.submit_votes(item_id, votes, comment, seconds);
                    self.dispatch(next);
                }
                Effect::Review(op) => {
                    let next = self.review_op(op);
                    if let Some(next) = next {
                        self.dispatch(next);
                    }
                }
            }
        }
    }

    /// Load `who`'s queue of a session: the items they have not submitted (an
    /// adjudicator: the items with disputed aspects), Left/Right as placed for them.
    pub fn open_vote(&mut self, session: &str, who: &str) -> Action {
        match super::vote_queue::load(&self.workspace, session, who) {
            Ok((db, view)) => {
                self.who = who.to_string();
                self.vote_db = Some(db);
                Action::VoteLoaded(Box::new(view))
            }
            Err(e) => Action::VoteFailed(e),
        }
    }

    fn submit_votes(
        &mut self,
        item_id: String,
        votes: Vec<(String, crate::eval::votes::Side)>,
        comment: Option<String>,
        seconds: f64,
    ) -> Action {
        let (Some(view), Some(db)) = (self.state.vote.as_ref(), self.vote_db.as_ref()) else {
            return Action::VoteFailed("no session open".into());
        };
        match super::vote_queue::submit(db, view, &item_id, &votes, comment.as_deref(), seconds) {
            Ok(()) => Action::VoteSubmitted(item_id),
            Err(e) => Action::VoteFailed(e),
        }
    }

    fn open_review(&mut self, stage: &str) -> Action {
        let loaded = Workspace::open(&self.workspace).and_then(|ws| {
            let db = ws.db()?;
            let items = crate::review::load_items(&ws, &db, stage)?;
            Ok((db, items))
        });
        match loaded {
            Ok((_, items)) if items.is_empty() => Action::ReviewFailed(format!(
                "`{stage}` proposed no revisions to review: every row came back unchanged, \
                     failed or without a readable verdict (see the `{stage}.state` column in the table)"
            )),
            Ok((db, items)) => {
                self.review = Some(ReviewSession::new(db, stage, &self.who));
                Action::ReviewLoaded {
                    stage: stage.to_string(),
                    who: self.who.clone(),
                    items,
                }
            }
            Err(e) => Action::ReviewFailed(match e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message,
            }),
        }
    }

    /// Perform a review write; the action that shows its result.
    fn review_op(&mut self, op: ReviewOp) -> Option<Action> {
        let (Some(session), Some(view)) = (self.review.as_mut(), self.state.review.as_ref()) else {
            return None;
        };
        let items = &view.items;
        let result = match op {
            ReviewOp::Decide {
                indices,
                state,
                action,
                seconds,
                advance,
            } => session
                .decide(items, &indices, state, None, &action, seconds)
                .map(|changes| Some((changes, advance))),
            ReviewOp::Undo => session.undo(items).map(|c| c.map(|c| (c, false))),
            ReviewOp::Redo => session.redo(items).map(|c| c.map(|c| (c, false))),
            ReviewOp::Edit { index, seconds } => {
                let item = &items[index];
                match edit_in_editor(
                    &item.id,
                    item.revised(),
                    self.editor.as_deref(),
                    self.in_terminal,
                ) {
                    Ok(None) => {
                        return Some(Action::ReviewFailed("no change; nothing saved".into()));
                    }
                    Ok(Some(texts)) => {
                        self.needs_clear = self.in_terminal;
                        session
                            .decide(
                                items,
                                &[index],
                                ReviewState::Edited,
                                Some(texts),
                                "edit",
                                Some(seconds),
                            )
                            .map(|changes| Some((changes, false)))
                    }
                    Err(e) => {
                        self.needs_clear = self.in_terminal;
                        Err(e)
                    }
                }
            }
        };
        match result {
            Ok(Some((changes, advance))) => Some(Action::ReviewApplied { changes, advance }),
            Ok(None) => Some(Action::ReviewFailed("nothing to undo or redo".into())),
            Err(e) => Some(Action::ReviewFailed(e)),
        }
    }

    /// Apply finished background work; true if anything arrived.
    pub fn pump(&mut self) -> bool {
        let mut any = false;
        while let Ok(out) = self.jobs.rx.try_recv() {
            self.jobs.note_received(&out);
            self.dispatch(Action::JobDone(out));
            any = true;
        }
        any
    }

    /// Block until every started job has reported (tests and benches).
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if self.jobs.in_flight == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(out) = self
                .jobs
                .rx
                .recv_timeout(left.min(Duration::from_millis(50)))
            {
                self.jobs.note_received(&out);
                self.dispatch(Action::JobDone(out));
            }
        }
    }

    /// Map a key press to an action for the current mode.
    pub fn action_for_key(&self, ev: &crossterm::event::KeyEvent) -> Option<Action> {
        let name = key_name(ev)?;
        if self.state.mode == Mode::Input {
            if let Some(a) = self.state.keymap.action_for("input", &name) {
                return Some(a);
            }
            if name == "ctrl-c" {
                return Some(Action::Quit);
            }
            return match ev.code {
                crossterm::event::KeyCode::Char(c) if !name.starts_with("ctrl-") => {
                    Some(Action::InputChar(c))
                }
                _ => None,
            };
        }
        self.state
            .keymap
            .action_for(self.state.mode.keymap_name(), &name)
    }

    pub fn draw<B: Backend>(&self, terminal: &mut Terminal<B>) -> Result<(), B::Error> {
        terminal.draw(|f| super::render::draw(f, &self.state))?;
        Ok(())
    }
}

/// Open `texts` in the editor; the edited texts, or `None` when nothing changed.
fn edit_in_editor(
    id: &str,
    texts: &Texts,
    editor: Option<&str>,
    in_terminal: bool,
) -> Result<Option<Texts>, String> {
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect();
    let path = std::env::temp_dir().join(format!("gleaner-edit-{}-{safe}.md", std::process::id()));
    std::fs::write(&path, edit_file::render(id, texts))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let command = editor
        .map(str::to_string)
        .or_else(|| std::env::var("VISUAL").ok().filter(|v| !v.is_empty()))
        .or_else(|| std::env::var("EDITOR").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "vi".into());
    if in_terminal {
        restore_terminal();
    }
    // Through the shell, so EDITOR may carry arguments (`code --wait`).
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status();
    if in_terminal {
        let _ = enable_raw_mode();
        let _ = execute!(
            std::io::stdout(),
            EnterAlternateScreen,
            crossterm::event::EnableMouseCapture
        );
    }
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(format!(
                "the editor `{command}` exited with {s}; nothing saved"
            ));
        }
        Err(e) => return Err(format!("cannot start the editor `{command}`: {e}")),
    }
    let edited = edit_file::parse(&text.map_err(|e| e.to_string())?)?;
    Ok((edited != *texts).then_some(edited))
}

/// Restores the terminal when dropped, including during a panic unwind.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        crossterm::event::DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Which screen the terminal UI opens on.
#[derive(Debug, Clone, Default)]
pub enum StartScreen {
    #[default]
    Browse,
    /// `gleaner review`: a refine stage, as a reviewer.
    Review { stage: String, who: Option<String> },
    /// `gleaner eval annotate`: a session, as an annotator or adjudicator.
    Vote { session: String, who: String },
    /// `gleaner eval report --tui`.
    EvalReport(Box<crate::eval::report::Report>),
}

pub fn run_terminal(
    ws: Workspace,
    theme: Option<&str>,
    start: StartScreen,
) -> Result<(), UserError> {
    let config_dir = super::theme::config_dir();
    let theme = Theme::resolve(theme, config_dir.as_deref())?;
    let keymap = Keymap::load(config_dir.map(|d| d.join("keymap.toml")).as_deref())?;
    let mut app = App::new(&ws, theme, keymap)?;
    app.in_terminal = true;
    let failed = |app: &App| {
        UserError::new(
            app.state
                .status
                .as_ref()
                .map(|(m, _)| m.clone())
                .unwrap_or_default(),
        )
    };
    match start {
        StartScreen::Browse => {}
        StartScreen::Review { stage, who } => {
            if let Some(who) = who {
                app.who = who;
            }
            app.dispatch(Action::OpenReview(stage));
            if app.review.is_none() {
                return Err(failed(&app));
            }
        }
        StartScreen::EvalReport(r) => app.dispatch(Action::ShowEvalReport(r)),
        StartScreen::Vote { session, who } => {
            let loaded = app.open_vote(&session, &who);
            app.dispatch(loaded);
            if app.state.vote.is_none() {
                return Err(failed(&app));
            }
        }
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        hook(info);
    }));
    enable_raw_mode().map_err(|e| {
        UserError::new(format!("cannot use the terminal: {e}")).with_hint(
            "the browser needs an interactive terminal; in scripts use `gleaner stats` or `gleaner export`",
        )
    })?;
    let _guard = TerminalGuard;
    execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        crossterm::event::EnableMouseCapture
    )
    .map_err(|e| UserError::new(format!("cannot use the terminal: {e}")))?;
    let mut terminal: Terminal<CrosstermBackend<Stdout>> =
        Terminal::new(CrosstermBackend::new(std::io::stdout()))
            .map_err(|e| UserError::new(format!("cannot use the terminal: {e}")))?;
    let size = terminal.size().map_err(|e| UserError::new(e.to_string()))?;
    app.dispatch(Action::Resize {
        width: size.width,
        height: size.height,
    });
    tracing::info!(workspace = %ws.dir.display(), rows = app.state.total_rows, "tui opened");
    event_loop(&mut app, &mut terminal).map_err(|e| UserError::new(format!("terminal error: {e}")))
}

fn event_loop(
    app: &mut App,
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
) -> std::io::Result<()> {
    let mut dirty = true;
    let tick = Duration::from_millis(30);
    while !app.state.quit {
        if app.needs_clear {
            terminal.clear()?;
            app.needs_clear = false;
            dirty = true;
        }
        if dirty {
            app.draw(terminal)?;
            dirty = false;
        }
        if event::poll(tick)? {
            // Drain everything queued so fast scrolling coalesces into one frame.
            loop {
                let action = match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => app.action_for_key(&k),
                    Event::Mouse(m) => match m.kind {
                        MouseEventKind::ScrollDown => Some(Action::ScrollDown),
                        MouseEventKind::ScrollUp => Some(Action::ScrollUp),
                        _ => None,
                    },
                    Event::Resize(w, h) => Some(Action::Resize {
                        width: w,
                        height: h,
                    }),
                    _ => None,
                };
                if let Some(a) = action {
                    app.dispatch(a);
                    dirty = true;
                }
                if app.state.quit || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
        if app.pump() {
            dirty = true;
        }
        // Keep progress figures moving while work runs.
        if app.jobs.in_flight > 0 {
            dirty = true;
        }
    }
    Ok(())
}
