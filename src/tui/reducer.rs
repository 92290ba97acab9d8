//! The one reducer: `(state, action) → state'` plus the background work to start.

use std::sync::Arc;

use super::action::Action;
use super::jobs::{JobKind, JobOutput, JobRequest};
use super::state::{
    AppState, Histogram, Input, InputKind, Level, Mode, RunOutcome, RunView, Search, StageLine,
    ViewState, browse_columns,
};
use crate::stages::runner::RunEvent;

#[derive(Debug, Clone)]
pub enum Effect {
    Start(JobRequest),
    Cancel(JobKind),
    /// Write review decisions (or edit) before the screen shows them.
    Review(super::review::ReviewOp),
    /// Load a refine stage's revisions and open the review screen.
    OpenReview(String),
    /// Write an item's votes (or adjudication) before the screen moves on.
    SubmitVotes {
        item_id: String,
        votes: Vec<(String, crate::eval::votes::Side)>,
        comment: Option<String>,
        seconds: f64,
    },
}

pub fn update(s: &mut AppState, action: Action) -> Vec<Effect> {
    let mut fx = Vec::new();
    let before_row = s.current_row();
    let scrolls_reader = matches!(
        action,
        Action::ReaderDown | Action::ReaderPageDown | Action::ScrollDown | Action::Resize { .. }
    );
    if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) {
        // A fresh keypress clears a stale status message.
        if matches!(s.status, Some((_, Level::Info))) {
            s.status = None;
        }
    }
    if s.eval_report.is_some() && s.mode == Mode::Browse {
        match action {
            Action::Down | Action::ReaderDown | Action::ScrollDown => s.help_scroll += 1,
            Action::Up | Action::ReaderUp | Action::ScrollUp => {
                s.help_scroll = s.help_scroll.saturating_sub(1)
            }
            Action::PageDown => s.help_scroll += 10,
            Action::PageUp => s.help_scroll = s.help_scroll.saturating_sub(10),
            Action::Back => s.eval_report = None,
            Action::Quit => s.quit = true,
            _ => {}
        }
        return fx;
    }
    match s.mode {
        Mode::Input if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => {
            input(s, action, &mut fx)
        }
        Mode::Help if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => match action
        {
            Action::Down | Action::ReaderDown => s.help_scroll += 1,
            Action::Up | Action::ReaderUp => s.help_scroll = s.help_scroll.saturating_sub(1),
            Action::Back | Action::Help => {
                s.mode = if s.vote.is_some() {
                    Mode::Vote
                } else if s.review.as_ref().is_some_and(|r| r.active) {
                    Mode::Review
                } else if s.zoom {
                    Mode::Reader
                } else {
                    Mode::Browse
                }
            }
            Action::Quit => s.quit = true,
            _ => {}
        },
        Mode::Histogram if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => {
            histogram_keys(s, action, &mut fx)
        }
        Mode::Jobs if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => {
            jobs_keys(s, action, &mut fx)
        }
        Mode::Review if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => {
            super::review::review_keys(s, action, &mut fx)
        }
        Mode::Vote if !matches!(action, Action::JobDone(_) | Action::Resize { .. }) => {
            super::vote::vote_keys(s, action, &mut fx)
        }
        _ => common(s, action, &mut fx),
    }
    clamp(s);
    count_reader_lines(s);
    if scrolls_reader {
        clamp_reader(s);
    }
    if s.current_row() != before_row || (s.show_reader && s.reader.row != s.current_row()) {
        request_record(s, &mut fx);
    }
    fx
}

fn request_record(s: &mut AppState, fx: &mut Vec<Effect>) {
    let row = s.current_row();
    if s.reader.row == row {
        return;
    }
    s.reader.row = row;
    s.reader.record = None;
    s.reader.lines = None;
    s.reader.error = None;
    s.reader.scroll = 0;
    if let Some(row) = row
        && (s.show_reader || s.zoom)
    {
        fx.push(Effect::Start(JobRequest::Record { row }));
    }
}

fn common(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let page = s.page_rows();
    let n = s.view.rows.len();
    match action {
        Action::Quit => s.quit = true,
        Action::Down => s.view.cursor = (s.view.cursor + 1).min(n.saturating_sub(1)),
        Action::Up => s.view.cursor = s.view.cursor.saturating_sub(1),
        Action::PageDown => s.view.cursor = (s.view.cursor + page).min(n.saturating_sub(1)),
        Action::PageUp => s.view.cursor = s.view.cursor.saturating_sub(page),
        Action::Top => s.view.cursor = 0,
        Action::Bottom => s.view.cursor = n.saturating_sub(1),
        Action::ScrollDown if s.mode == Mode::Reader => s.reader.scroll += 3,
        Action::ScrollUp if s.mode == Mode::Reader => {
            s.reader.scroll = s.reader.scroll.saturating_sub(3)
        }
        Action::ScrollDown => s.view.cursor = (s.view.cursor + 3).min(n.saturating_sub(1)),
        Action::ScrollUp => s.view.cursor = s.view.cursor.saturating_sub(3),
        Action::Select(pos) => s.view.cursor = pos.min(n.saturating_sub(1)),
        Action::ColumnLeft => s.col_focus = s.col_focus.saturating_sub(1),
        Action::ColumnRight => {
            s.col_focus = (s.col_focus + 1).min(s.columns.len().saturating_sub(1))
        }
        Action::ToggleReader => {
            s.show_reader = !s.show_reader;
            if !s.show_reader && s.mode == Mode::Reader {
                s.mode = Mode::Browse;
            }
            s.reader.row = None;
        }
        Action::ZoomReader => {
            s.zoom = true;
            s.mode = Mode::Reader;
            s.reader.row = if s.show_reader { s.reader.row } else { None };
        }
        Action::FocusNext => {
            if s.mode == Mode::Reader {
                s.mode = Mode::Browse;
                s.zoom = false;
            } else {
                s.show_reader = true;
                s.mode = Mode::Reader;
            }
        }
        Action::ReaderDown => s.reader.scroll += 1,
        Action::ReaderUp => s.reader.scroll = s.reader.scroll.saturating_sub(1),
        Action::ReaderPageDown => s.reader.scroll += reader_page(s),
        Action::ReaderPageUp => s.reader.scroll = s.reader.scroll.saturating_sub(reader_page(s)),
        Action::Back => {
            if s.mode == Mode::Reader {
                s.mode = Mode::Browse;
                s.zoom = false;
            } else if s.view_pending || s.search.as_ref().is_some_and(|x| x.matches.is_none()) {
                s.view_pending = false;
                if s.search.as_ref().is_some_and(|x| x.matches.is_none()) {
                    s.search = None;
                }
                fx.push(Effect::Cancel(JobKind::View));
                fx.push(Effect::Cancel(JobKind::Search));
                s.status = Some(("cancelled".into(), Level::Info));
            } else if s.search.is_some() {
                s.search = None;
            }
        }
        Action::Search => open_input(s, InputKind::Search),
        Action::Filter => {
            if s.loading {
                s.status = Some((
                    "still loading rows; filter when loading finishes".into(),
                    Level::Info,
                ));
            } else {
                open_input(s, InputKind::Filter);
            }
        }
        Action::SetSearch(q) => start_search(s, q, fx),
        Action::SearchNext => jump_match(s, true),
        Action::SearchPrev => jump_match(s, false),
        Action::SetFilter(expr) => {
            let expr = expr.trim().to_string();
            let filter = (!expr.is_empty()).then_some(expr);
            start_view(s, filter, s.view.sort.clone(), fx);
        }
        Action::ClearFilter => {
            if s.view.filter.is_some() {
                start_view(s, None, s.view.sort.clone(), fx);
            }
        }
        Action::SortAsc | Action::SortDesc => {
            if let Some(c) = s.focused_column() {
                let sort = Some((c.name.clone(), action == Action::SortDesc));
                start_view(s, s.view.filter.clone(), sort, fx);
            }
        }
        Action::SortBy { column, descending } => {
            if s.columns.iter().any(|c| c.name == column) {
                start_view(s, s.view.filter.clone(), Some((column, descending)), fx);
            } else {
                s.status = Some((format!("no column `{column}`"), Level::Error));
            }
        }
        Action::Histogram => {
            if let Some(c) = s.focused_column() {
                let name = c.name.clone();
                open_histogram(s, name, fx);
            }
        }
        Action::OpenHistogram(name) => {
            if s.columns.iter().any(|c| c.name == name) {
                open_histogram(s, name, fx);
            } else {
                s.status = Some((format!("no column `{name}`"), Level::Error));
            }
        }
        Action::ToggleMark => {
            if let Some(row) = s.current_row() {
                if !s.marks.remove(&row) {
                    s.marks.insert(row);
                }
                s.view.cursor = (s.view.cursor + 1).min(n.saturating_sub(1));
            }
        }
        Action::ClearMarks => s.marks.clear(),
        Action::ExportMarked => {
            if s.marks.is_empty() {
                s.status = Some((
                    "no marked rows: mark rows with m first".into(),
                    Level::Error,
                ));
            } else {
                s.status = Some((
                    format!("exporting {} marked rows…", s.marks.len()),
                    Level::Info,
                ));
                fx.push(Effect::Start(JobRequest::Export {
                    rows: s.marks.iter().copied().collect(),
                }));
            }
        }
        Action::Undo => {
            if let Some(prev) = s.undo.pop() {
                let current = std::mem::replace(&mut s.view, prev);
                s.redo.push(current);
                s.status = Some(("undone".into(), Level::Info));
            } else {
                s.status = Some(("nothing to undo".into(), Level::Info));
            }
        }
        Action::Redo => {
            if let Some(next) = s.redo.pop() {
                let current = std::mem::replace(&mut s.view, next);
                s.undo.push(current);
                s.status = Some(("redone".into(), Level::Info));
            } else {
                s.status = Some(("nothing to redo".into(), Level::Info));
            }
        }
        Action::Help => {
            s.help_scroll = 0;
            s.mode = Mode::Help;
        }
        Action::Confirm => {
            s.zoom = true;
            s.mode = Mode::Reader;
        }
        Action::Resize { width, height } => {
            s.width = width;
            s.height = height;
        }
        Action::JobDone(out) => job_done(s, out, fx),
        Action::Jobs => s.mode = Mode::Jobs,
        Action::Review => match s.review.as_mut() {
            Some(r) => {
                r.active = true;
                s.mode = Mode::Review;
            }
            None => fx.push(Effect::OpenReview("aido.refine".into())),
        },
        Action::OpenReview(stage) => fx.push(Effect::OpenReview(stage)),
        Action::ShowEvalReport(r) => {
            s.eval_report = Some(r);
            s.help_scroll = 0;
        }
        Action::VoteLoaded(_) | Action::VoteFailed(_) | Action::VoteSubmitted(_) => {
            super::vote::vote_keys(s, action, fx)
        }
        Action::VoteLeft
        | Action::VoteTie
        | Action::VoteRight
        | Action::NextAspect
        | Action::PrevAspect
        | Action::SkipItem
        | Action::Comment
        | Action::SetComment(_)
        | Action::ToggleGuidelines => {}
        Action::ReviewApplied { .. } | Action::ReviewFailed(_) | Action::ReviewLoaded { .. } => {
            super::review::review_keys(s, action, fx)
        }
        Action::RunRecipe | Action::CancelRun | Action::StartRecipe(_) => jobs_keys(s, action, fx),
        Action::InputChar(_) | Action::InputBackspace => {}
        // Review keys do nothing outside the review screen.
        Action::Approve
        | Action::Reject
        | Action::EditRevision
        | Action::ToggleDiff
        | Action::ToggleTrace
        | Action::NextItem
        | Action::PrevItem
        | Action::CycleReviewFilter
        | Action::SetReviewFilter(_)
        | Action::BulkApprove
        | Action::BulkReject => {}
    }
}

/// The Jobs panel: start a recipe, watch it, cancel it.
fn jobs_keys(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    match action {
        Action::Back | Action::Jobs => s.mode = if s.zoom { Mode::Reader } else { Mode::Browse },
        Action::Quit => s.quit = true,
        Action::Help => s.mode = Mode::Help,
        Action::RunRecipe if s.run_active() => {
            s.status = Some(("a recipe is running; c cancels it".into(), Level::Error));
        }
        Action::RunRecipe => {
            s.mode = Mode::Jobs;
            open_input(s, InputKind::Recipe);
        }
        Action::StartRecipe(path) => start_recipe(s, path, fx),
        Action::CancelRun => {
            if let Some(run) = s
                .runs
                .last_mut()
                .filter(|r| r.outcome == RunOutcome::Running)
            {
                run.outcome = RunOutcome::Cancelling;
                fx.push(Effect::Cancel(JobKind::Recipe));
            }
        }
        Action::JobDone(out) => job_done(s, out, fx),
        _ => {}
    }
}

fn start_recipe(s: &mut AppState, path: String, fx: &mut Vec<Effect>) {
    if s.run_active() {
        s.status = Some(("a recipe is running; c cancels it".into(), Level::Error));
        return;
    }
    s.runs.push(RunView {
        recipe: path.clone(),
        stages: Vec::new(),
        notes: Vec::new(),
        outcome: RunOutcome::Running,
    });
    s.mode = Mode::Jobs;
    fx.push(Effect::Start(JobRequest::Recipe { path: path.into() }));
}

fn run_event(s: &mut AppState, event: RunEvent) {
    let Some(run) = s.runs.last_mut() else { return };
    match event {
        RunEvent::Note(text) => run.notes.push(text),
        RunEvent::Started { stage, rows } => run.stages.push(StageLine {
            name: stage,
            progress: crate::stages::judging::Progress {
                total: rows,
                ..Default::default()
            },
            elapsed: std::time::Duration::ZERO,
            summary: None,
        }),
        RunEvent::Progress {
            stage,
            progress,
            elapsed,
        } => {
            if let Some(line) = run.stages.iter_mut().rev().find(|l| l.name == stage) {
                line.progress = progress;
                line.elapsed = elapsed;
            }
        }
        RunEvent::Finished(summary) => {
            if let Some(line) = run.stages.iter_mut().rev().find(|l| l.name == summary.name) {
                line.summary = Some(summary);
            }
        }
    }
}

fn reader_page(s: &AppState) -> usize {
    (s.height as usize / 2).max(1)
}

fn open_input(s: &mut AppState, kind: InputKind) {
    let text = match kind {
        InputKind::Search => s
            .search
            .as_ref()
            .map(|x| x.query.clone())
            .unwrap_or_default(),
        InputKind::Filter => s.view.filter.clone().unwrap_or_default(),
        InputKind::Recipe => s
            .runs
            .last()
            .map(|r| r.recipe.clone())
            .unwrap_or_else(|| "recipe.toml".into()),
        InputKind::Comment => s
            .vote
            .as_ref()
            .map(|v| v.comment.clone())
            .unwrap_or_default(),
    };
    s.input = Some(Input {
        kind,
        text,
        error: None,
        from: s.mode,
    });
    s.mode = Mode::Input;
}

fn input(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let Some(inp) = s.input.as_mut() else {
        s.mode = Mode::Browse;
        return;
    };
    match action {
        Action::InputChar(c) => {
            inp.text.push(c);
            inp.error = None;
        }
        Action::InputBackspace => {
            inp.text.pop();
            inp.error = None;
        }
        Action::Back => {
            s.mode = inp.from;
            s.input = None;
        }
        Action::Confirm => {
            let inp = s.input.take().expect("checked");
            s.mode = inp.from;
            match inp.kind {
                InputKind::Search if inp.text.is_empty() => s.search = None,
                InputKind::Search => start_search(s, inp.text, fx),
                InputKind::Recipe => {
                    let path = inp.text.trim().to_string();
                    if !path.is_empty() {
                        start_recipe(s, path, fx);
                    }
                }
                InputKind::Comment => {
                    super::vote::vote_keys(s, Action::SetComment(inp.text), fx);
                }
                InputKind::Filter => {
                    let text = inp.text.trim().to_string();
                    if text.is_empty() {
                        if s.view.filter.is_some() {
                            start_view(s, None, s.view.sort.clone(), fx);
                        }
                    } else {
                        start_view(s, Some(text), s.view.sort.clone(), fx);
                    }
                }
            }
        }
        Action::Quit => s.quit = true,
        _ => {}
    }
}

fn start_search(s: &mut AppState, query: String, fx: &mut Vec<Effect>) {
    s.generation += 1;
    s.search = Some(Search {
        query: query.clone(),
        matches: None,
        progress: None,
    });
    fx.push(Effect::Start(JobRequest::Search {
        generation: s.generation,
        query,
    }));
}

fn start_view(
    s: &mut AppState,
    filter: Option<String>,
    sort: Option<(String, bool)>,
    fx: &mut Vec<Effect>,
) {
    if s.loading {
        s.status = Some((
            "still loading rows; try again when loading finishes".into(),
            Level::Info,
        ));
        return;
    }
    s.generation += 1;
    s.view_pending = true;
    fx.push(Effect::Start(JobRequest::View {
        generation: s.generation,
        filter: filter.clone(),
        sort: sort.clone(),
        table: s.table.clone(),
    }));
    // Remember what was asked; the rows arrive with the job result.
    s.pending_view = Some((filter, sort));
}

fn open_histogram(s: &mut AppState, column: String, fx: &mut Vec<Effect>) {
    s.generation += 1;
    s.hist = Some(Histogram {
        column: column.clone(),
        dist: None,
        error: None,
        selected: 0,
    });
    s.mode = Mode::Histogram;
    fx.push(Effect::Start(JobRequest::Histogram {
        generation: s.generation,
        column,
        view: s.view.rows.clone(),
        table: s.table.clone(),
    }));
}

fn histogram_keys(s: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let bins = s
        .hist
        .as_ref()
        .and_then(|h| h.dist.as_ref())
        .map(|d| d.bins.len())
        .unwrap_or(0);
    match action {
        Action::Down => {
            if let Some(h) = s.hist.as_mut() {
                h.selected = (h.selected + 1).min(bins.saturating_sub(1));
            }
        }
        Action::Up => {
            if let Some(h) = s.hist.as_mut() {
                h.selected = h.selected.saturating_sub(1);
            }
        }
        Action::Confirm => {
            let bin_filter = s
                .hist
                .as_ref()
                .and_then(|h| h.dist.as_ref().and_then(|d| d.bins.get(h.selected)))
                .map(|b| b.filter.clone());
            if let Some(bin) = bin_filter {
                let filter = match &s.view.filter {
                    Some(f) => format!("({f}) and ({bin})"),
                    None => bin,
                };
                s.mode = Mode::Browse;
                s.hist = None;
                start_view(s, Some(filter), s.view.sort.clone(), fx);
            }
        }
        Action::Back | Action::Histogram => {
            s.mode = Mode::Browse;
            s.hist = None;
            fx.push(Effect::Cancel(JobKind::Histogram));
        }
        Action::Help => s.mode = Mode::Help,
        Action::Quit => s.quit = true,
        _ => {}
    }
}

fn jump_match(s: &mut AppState, forward: bool) {
    let Some(matches) = s.search.as_ref().and_then(|x| x.matches.clone()) else {
        s.status = Some(("no search: press / to search".into(), Level::Info));
        return;
    };
    if matches.is_empty() {
        s.status = Some(("no matches".into(), Level::Info));
        return;
    }
    let n = s.view.rows.len();
    if n == 0 {
        s.status = Some(("no rows in the current view".into(), Level::Info));
        return;
    }
    let is_match = |pos: usize| matches.binary_search(&s.view.rows[pos]).is_ok();
    let found = if forward {
        (s.view.cursor + 1..n)
            .chain(0..=s.view.cursor.min(n.saturating_sub(1)))
            .find(|p| is_match(*p))
    } else {
        (0..s.view.cursor)
            .rev()
            .chain((s.view.cursor..n).rev())
            .find(|p| is_match(*p))
    };
    match found {
        Some(pos) => s.view.cursor = pos,
        None => s.status = Some(("no matches in the current view".into(), Level::Info)),
    }
}

fn job_done(s: &mut AppState, out: JobOutput, fx: &mut Vec<Effect>) {
    match out {
        JobOutput::Table(Ok(table)) if s.reloading => {
            // New stage columns after a run: same rows, same filter and sort.
            s.reloading = false;
            s.columns = browse_columns(&table, &s.stages);
            s.col_focus = s.col_focus.min(s.columns.len().saturating_sub(1));
            s.table = table;
            s.reader.row = None;
            if s.view.filter.is_some() || s.view.sort.is_some() {
                start_view(s, s.view.filter.clone(), s.view.sort.clone(), fx);
            }
        }
        JobOutput::Table(Ok(table)) => {
            let n = table.height() as u32;
            s.table = table;
            s.loading = false;
            // Nothing could change the view while loading, so it is still "all rows".
            s.view.rows = Arc::new((0..n).collect());
        }
        JobOutput::Run(event) => run_event(s, event),
        JobOutput::Stages(stages) => s.stages = stages,
        JobOutput::RunDone(result) => {
            let Some(run) = s.runs.last_mut() else { return };
            match result {
                Ok(summaries) => {
                    let interrupted = summaries.iter().any(|x| x.interrupted);
                    run.outcome = if interrupted {
                        RunOutcome::Interrupted
                    } else {
                        RunOutcome::Done
                    };
                    let written: Vec<&str> = summaries
                        .iter()
                        .filter(|x| x.sidecar.is_some())
                        .map(|x| x.name.as_str())
                        .collect();
                    if !written.is_empty() {
                        s.status = Some((
                            format!("{} done: new columns in the table", written.join(", ")),
                            Level::Info,
                        ));
                        s.reloading = true;
                        fx.push(Effect::Start(JobRequest::Reload));
                    }
                }
                Err(e) => run.outcome = RunOutcome::Failed(e),
            }
        }
        JobOutput::Table(Err(e)) => {
            s.reloading = false;
            s.loading = false;
            s.status = Some((format!("loading failed: {e}"), Level::Error));
        }
        JobOutput::Record { row, result } => {
            if s.reader.row == Some(row) {
                match result {
                    Ok(r) => {
                        s.reader.fields =
                            super::state::stage_fields(&s.table, row as usize, &s.stages);
                        s.reader.record = Some(r);
                        s.reader.lines = None;
                    }
                    Err(e) => s.reader.error = Some(e),
                }
            }
        }
        JobOutput::View { generation, result } => {
            if generation != s.generation || s.pending_view.is_none() {
                return;
            }
            s.view_pending = false;
            let (filter, sort) = s.pending_view.take().expect("checked");
            match result {
                Ok(rows) => {
                    let keep_row = s.current_row();
                    let previous = std::mem::replace(
                        &mut s.view,
                        ViewState {
                            filter,
                            sort,
                            rows: rows.clone(),
                            cursor: 0,
                        },
                    );
                    s.undo.push(previous);
                    s.redo.clear();
                    if let Some(row) = keep_row
                        && let Some(pos) = rows.iter().position(|r| *r == row)
                    {
                        s.view.cursor = pos;
                    }
                    s.status = Some((format!("{} rows", rows.len()), Level::Info));
                }
                Err(e) => {
                    s.status = Some((format!("filter: {e}"), Level::Error));
                    // Reopen the editor so the expression can be fixed.
                    if let Some(text) = filter.filter(|f| Some(f) != s.view.filter.as_ref()) {
                        s.input = Some(Input {
                            kind: InputKind::Filter,
                            text,
                            error: Some(e),
                            from: s.mode,
                        });
                        s.mode = Mode::Input;
                    }
                }
            }
        }
        JobOutput::Search { generation, result } => {
            if generation != s.generation {
                return;
            }
            match result {
                Ok(matches) => {
                    let count = matches.len();
                    if let Some(search) = s.search.as_mut() {
                        search.matches = Some(matches.clone());
                        search.progress = None;
                    }
                    s.status = Some((format!("{count} matching rows"), Level::Info));
                    let cursor_is_match = s
                        .current_row()
                        .is_some_and(|r| matches.binary_search(&r).is_ok());
                    if count > 0 && !cursor_is_match {
                        jump_match(s, true);
                    }
                }
                Err(e) if e == "cancelled" => {}
                Err(e) => s.status = Some((format!("search: {e}"), Level::Error)),
            }
            let _ = fx;
        }
        JobOutput::SearchProgress {
            generation,
            done,
            total,
        } => {
            if generation == s.generation
                && let Some(search) = s.search.as_mut()
            {
                search.progress = Some((done, total));
            }
        }
        JobOutput::Histogram { generation, result } => {
            if generation != s.generation {
                return;
            }
            if let Some(h) = s.hist.as_mut() {
                match result {
                    Ok(d) => h.dist = Some(d),
                    Err(e) => h.error = Some(e),
                }
            }
        }
        JobOutput::Exported(Ok((path, rows))) => {
            s.status = Some((
                format!("exported {rows} rows to {}", path.display()),
                Level::Info,
            ));
        }
        JobOutput::Exported(Err(e)) => {
            s.status = Some((format!("export failed: {e}"), Level::Error))
        }
    }
}

/// Stop the reader scrolling past the end of the sample.
fn clamp_reader(s: &mut AppState) {
    if let Some((_, total)) = s.reader.lines {
        let (_, height) = s.reader_inner();
        s.reader.scroll = s.reader.scroll.min(total.saturating_sub(height));
    }
}

/// Recount the reader's lines when the record or the pane width changed.
fn count_reader_lines(s: &mut AppState) {
    let (width, _) = s.reader_inner();
    match &s.reader.record {
        Some(record) if s.reader.lines.is_none_or(|(w, _)| w != width) => {
            s.reader.lines = Some((
                width,
                super::render::reader::line_count(record, &s.reader.fields, width),
            ));
        }
        Some(_) => {}
        None => s.reader.lines = None,
    }
}

/// Keep the cursor on screen.
fn clamp(s: &mut AppState) {
    let n = s.view.rows.len();
    if n == 0 {
        s.view.cursor = 0;
        s.offset = 0;
        return;
    }
    s.view.cursor = s.view.cursor.min(n - 1);
    let page = s.page_rows();
    if s.view.cursor < s.offset {
        s.offset = s.view.cursor;
    } else if s.view.cursor >= s.offset + page {
        s.offset = s.view.cursor + 1 - page;
    }
    s.offset = s.offset.min(n.saturating_sub(1));
}
