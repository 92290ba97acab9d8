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
use super::state::{AppState, Mode, browse_column_names};
use super::theme::Theme;
use crate::error::{UserError, file_error};
use crate::store::Workspace;

/// Rows read synchronously so the first frame appears before the full load.
pub const FIRST_ROWS: usize = 1_000;

pub struct App {
    pub state: AppState,
    pub jobs: Jobs,
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
            }
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

pub fn run_terminal(ws: Workspace, theme: Option<&str>) -> Result<(), UserError> {
    let config_dir = super::theme::config_dir();
    let theme = Theme::resolve(theme, config_dir.as_deref())?;
    let keymap = Keymap::load(config_dir.map(|d| d.join("keymap.toml")).as_deref())?;
    let mut app = App::new(&ws, theme, keymap)?;
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
