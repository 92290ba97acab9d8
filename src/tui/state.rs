//! Everything the screen shows, in one struct. Rendering only reads it; the reducer
//! is the only writer.

use std::collections::BTreeSet;
use std::sync::Arc;

use polars::prelude::*;

use super::keymap::Keymap;
use super::theme::Theme;
use crate::data::frame::RECORD_COLUMNS;
use crate::data::record::Record;
use crate::data::stats::Distribution;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Browse,
    Reader,
    Histogram,
    Help,
    Input,
    Jobs,
    Review,
    Vote,
}

impl Mode {
    pub fn keymap_name(self) -> &'static str {
        match self {
            Mode::Browse => "browse",
            Mode::Reader => "reader",
            Mode::Histogram => "histogram",
            Mode::Help => "help",
            Mode::Input => "input",
            Mode::Jobs => "jobs",
            Mode::Review => "review",
            Mode::Vote => "vote",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Search,
    Filter,
    Recipe,
    Comment,
}

/// One recipe run started from the Jobs panel.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub recipe: String,
    pub stages: Vec<StageLine>,
    /// Local judge start-up and other news, oldest first.
    pub notes: Vec<String>,
    pub outcome: RunOutcome,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StageLine {
    pub name: String,
    pub progress: crate::stages::judging::Progress,
    pub elapsed: std::time::Duration,
    pub summary: Option<crate::stages::runner::StageSummary>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    Running,
    Cancelling,
    Done,
    Interrupted,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub kind: InputKind,
    pub text: String,
    pub error: Option<String>,
    /// Mode to return to.
    pub from: Mode,
}

/// A column of the browse table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub title: String,
    pub numeric: bool,
    /// Preferred width in cells; 0 = share the remaining space.
    pub width: u16,
}

/// The parts of the view that undo/redo restore.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    pub filter: Option<String>,
    pub sort: Option<(String, bool)>,
    pub rows: Arc<Vec<u32>>,
    pub cursor: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Search {
    pub query: String,
    /// Matching rows (snapshot row numbers), ascending.
    pub matches: Option<Arc<Vec<u32>>>,
    pub progress: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Default)]
pub struct Reader {
    pub row: Option<u32>,
    pub record: Option<Arc<Record>>,
    pub error: Option<String>,
    pub scroll: usize,
    /// Display lines of `record` at a text width: `(width, lines)`. Counting wraps the
    /// whole text, so the reducer keeps it here instead of every frame redoing it.
    pub lines: Option<(usize, usize)>,
    /// The row's stage outputs as `name: value` (scores, status, raw reply…).
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Histogram {
    pub column: String,
    pub dist: Option<Arc<Distribution>>,
    pub error: Option<String>,
    pub selected: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

pub struct AppState {
    pub title: String,
    pub total_rows: usize,
    /// Browse columns of all rows (only the first rows while `loading`).
    pub table: Arc<DataFrame>,
    pub loading: bool,
    pub columns: Vec<ColumnSpec>,
    pub view: ViewState,
    /// First visible position in the view.
    pub offset: usize,
    pub col_focus: usize,
    pub mode: Mode,
    pub show_reader: bool,
    pub zoom: bool,
    pub input: Option<Input>,
    pub search: Option<Search>,
    pub marks: BTreeSet<u32>,
    pub reader: Reader,
    pub hist: Option<Histogram>,
    pub undo: Vec<ViewState>,
    pub redo: Vec<ViewState>,
    pub status: Option<(String, Level)>,
    /// A filter/sort job is running.
    pub view_pending: bool,
    /// The filter and sort that job was asked for.
    pub pending_view: Option<(Option<String>, Option<(String, bool)>)>,
    pub width: u16,
    pub height: u16,
    pub help_scroll: usize,
    /// Generation of the newest view/search/histogram request.
    pub generation: u64,
    pub keymap: Arc<Keymap>,
    pub theme: Arc<Theme>,
    pub quit: bool,
    /// Recipe runs of this session, oldest first.
    pub runs: Vec<RunView>,
    /// The table is being reloaded with new stage columns.
    pub reloading: bool,
    /// Stages with a sidecar: their columns are `<stage>.<column>`.
    pub stages: Vec<String>,
    /// The revision review screen, once opened.
    pub review: Option<super::review::ReviewView>,
    /// The voting screen of an evaluation session.
    pub vote: Option<super::vote::VoteView>,
    /// An evaluation report on screen (`gleaner eval report --tui`).
    pub eval_report: Option<Box<crate::eval::report::Report>>,
}

impl AppState {
    pub fn new(
        title: String,
        total_rows: usize,
        first_rows: DataFrame,
        stages: Vec<String>,
        keymap: Keymap,
        theme: Theme,
    ) -> Self {
        let columns = browse_columns(&first_rows, &stages);
        let n = first_rows.height() as u32;
        Self {
            title,
            total_rows,
            loading: (n as usize) < total_rows,
            table: Arc::new(first_rows),
            columns,
            view: ViewState {
                filter: None,
                sort: None,
                rows: Arc::new((0..n).collect()),
                cursor: 0,
            },
            offset: 0,
            col_focus: 0,
            mode: Mode::Browse,
            show_reader: true,
            zoom: false,
            input: None,
            search: None,
            marks: BTreeSet::new(),
            reader: Reader::default(),
            hist: None,
            undo: Vec::new(),
            redo: Vec::new(),
            status: None,
            view_pending: false,
            pending_view: None,
            width: 120,
            height: 40,
            help_scroll: 0,
            generation: 0,
            keymap: Arc::new(keymap),
            theme: Arc::new(theme),
            quit: false,
            runs: Vec::new(),
            reloading: false,
            stages,
            review: None,
            vote: None,
            eval_report: None,
        }
    }

    /// The snapshot row under the cursor.
    pub fn current_row(&self) -> Option<u32> {
        self.view.rows.get(self.view.cursor).copied()
    }

    /// Table rows that fit on screen (matches the layout in `render`).
    pub fn page_rows(&self) -> usize {
        let body = self.height.saturating_sub(2) as usize; // title + hint bar
        let table = if self.zoom {
            0
        } else if self.show_reader {
            body * 11 / 20
        } else {
            body
        };
        table.saturating_sub(3).max(1) // borders + header
    }

    /// Text width and height inside the reader pane (matches the layout in `render`).
    pub fn reader_inner(&self) -> (usize, usize) {
        let body = self.height.saturating_sub(2) as usize;
        let pane = if self.zoom {
            body
        } else {
            body - (body * 55).div_ceil(100)
        };
        (
            self.width.saturating_sub(3) as usize,
            pane.saturating_sub(2).max(1),
        )
    }

    pub fn run_active(&self) -> bool {
        self.runs
            .last()
            .is_some_and(|r| matches!(r.outcome, RunOutcome::Running | RunOutcome::Cancelling))
    }

    pub fn focused_column(&self) -> Option<&ColumnSpec> {
        self.columns.get(self.col_focus)
    }
}

/// Which loaded columns the table shows, in order, with titles and widths.
pub fn browse_columns(df: &DataFrame, stages: &[String]) -> Vec<ColumnSpec> {
    let mut out = Vec::new();
    let has = |n: &str| df.schema().contains(n);
    let mut push = |name: &str, title: &str, numeric: bool, width: u16| {
        out.push(ColumnSpec {
            name: name.into(),
            title: title.into(),
            numeric,
            width,
        })
    };
    if has("id") {
        push("id", "id", false, 16);
    }
    for c in df.columns() {
        let name = c.name().as_str();
        if BASE_COLUMNS.contains(&name) || is_reply_bookkeeping(name, stages) {
            continue;
        }
        let numeric = crate::data::stats::is_numeric(c.dtype());
        // `ds2.rate.score` shows as `rate.score`: short, and still says which stage.
        // `ds2.rate.score` shows as `rate.score`, `embed.dim` as itself.
        let title = match stage_column(name, stages) {
            Some((stage, _)) if stage.contains('.') => {
                name.split_once('.').map_or(name, |(_, rest)| rest)
            }
            _ => name,
        };
        let width = if numeric {
            (title.chars().count() as u16).clamp(6, 20)
        } else {
            14
        };
        push(name, title, numeric, width);
    }
    if has("n_turns") {
        push("n_turns", "turns", true, 6);
    }
    if has("prompt_chars") {
        push("prompt_chars", "p.len", true, 8);
    }
    if has("response_chars") {
        push("response_chars", "r.len", true, 8);
    }
    if has("preview_prompt") {
        push("preview_prompt", "prompt", false, 0);
    }
    if has("preview_response") {
        push("preview_response", "response", false, 0);
    }
    out
}

/// `Some((stage, column))` for a column of one of `stages`' sidecars (`<stage>.<column>`).
pub fn stage_column<'a>(name: &'a str, stages: &[String]) -> Option<(&'a str, &'a str)> {
    stages
        .iter()
        .filter(|st| {
            name.len() > st.len() + 1
                && name.starts_with(st.as_str())
                && name.as_bytes()[st.len()] == b'.'
        })
        .max_by_key(|st| st.len())
        .map(|st| (&name[..st.len()], &name[st.len() + 1..]))
}

/// Stage columns about the reply rather than the sample (raw text, tokens, latency…):
/// in the reader and in filters, not in the table.
fn is_reply_bookkeeping(name: &str, stages: &[String]) -> bool {
    stage_column(name, stages).is_some_and(|(_, c)| {
        crate::stages::judging::REPLY_COLUMNS.contains(&c) && c != "status"
            || matches!(c, "reason" | "justification" | "dim" | "tokens" | "requests")
            // Refine/merge texts and traces: long, and read in the reader or review.
            || matches!(
                c,
                "instruction" | "input" | "output" | "evaluation" | "probe_output" | "trace"
            )
    })
}

/// The stage outputs of table row `row`, as `name: value` lines for the reader.
pub fn stage_fields(table: &DataFrame, row: usize, stages: &[String]) -> Vec<String> {
    if row >= table.height() {
        return Vec::new();
    }
    table
        .columns()
        .iter()
        .filter(|c| stage_column(c.name(), stages).is_some())
        .filter_map(|c| {
            let v = c.get(row).ok()?;
            let text = match v {
                AnyValue::Null => return None,
                AnyValue::String(s) => s.to_string(),
                AnyValue::StringOwned(s) => s.to_string(),
                other => other.to_string(),
            };
            Some(format!("{}: {text}", c.name()))
        })
        .collect()
}

/// Snapshot columns with fixed places in the table (or none).
pub const BASE_COLUMNS: &[&str] = &[
    "id",
    "n_turns",
    "prompt_chars",
    "response_chars",
    "preview_prompt",
    "preview_response",
];

/// Columns the browser loads for every row: everything but the full texts.
pub fn browse_column_names(schema: &Schema) -> Vec<String> {
    schema
        .iter_names()
        .map(|n| n.to_string())
        .filter(|n| n == "id" || !(RECORD_COLUMNS.contains(&n.as_str()) || n.starts_with("raw_")))
        .collect()
}
