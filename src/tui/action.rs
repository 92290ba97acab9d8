//! Everything the UI can do is an `Action`. Keys map to actions by name (see
//! `assets/keymap.toml`), tests push actions headlessly, and every action a user takes
//! can be logged and replayed because the type is serializable.

use serde::{Deserialize, Serialize};

use super::jobs::JobOutput;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    ColumnLeft,
    ColumnRight,
    /// Show or hide the reader pane.
    ToggleReader,
    /// Reader fills the screen (or back).
    ZoomReader,
    /// Move keyboard focus between table and reader.
    FocusNext,
    ReaderDown,
    ReaderUp,
    ReaderPageDown,
    ReaderPageUp,
    /// Start typing a search (`/`).
    Search,
    SearchNext,
    SearchPrev,
    /// Start typing a filter expression.
    Filter,
    ClearFilter,
    SortAsc,
    SortDesc,
    /// Histogram / frequency table of the focused column (`F`).
    Histogram,
    ToggleMark,
    ClearMarks,
    ExportMarked,
    Undo,
    Redo,
    Help,
    /// Show or hide the Jobs panel (recipes run on this workspace).
    Jobs,
    /// Ask for a recipe file to run (Jobs panel `r`).
    RunRecipe,
    /// Stop the running recipe after the requests in flight.
    CancelRun,
    /// Esc: close the overlay or input, cancel running view jobs.
    Back,
    /// Enter: confirm input, drill into a histogram bin, or open the reader.
    Confirm,
    ScrollDown,
    ScrollUp,
    InputChar(char),
    InputBackspace,
    /// Programmatic forms, for tests and scripting.
    SetFilter(String),
    SetSearch(String),
    SortBy {
        column: String,
        descending: bool,
    },
    OpenHistogram(String),
    /// Run this recipe file on the open workspace.
    StartRecipe(String),
    Select(usize),
    /// Open the revision review screen (`aido.refine` results).
    Review,
    /// Open the review of this refine stage (programmatic form).
    OpenReview(String),
    Approve,
    Reject,
    /// Edit the revision in `$EDITOR`; saved as a human edit.
    EditRevision,
    /// Side by side ↔ inline word diff.
    ToggleDiff,
    /// Show or hide the round trace panel.
    ToggleTrace,
    NextItem,
    PrevItem,
    /// Next review filter: all, pending, approved, rejected, edited, drifted, all_rounds_lost.
    CycleReviewFilter,
    SetReviewFilter(crate::review::ReviewFilter),
    /// Approve every item of the current filter (asks to confirm).
    BulkApprove,
    BulkReject,
    /// Voting: the focused aspect's left version is better / a tie / the right one.
    VoteLeft,
    VoteTie,
    VoteRight,
    NextAspect,
    PrevAspect,
    /// Put the item at the end of the queue without voting.
    SkipItem,
    /// Write a comment for the item.
    Comment,
    SetComment(String),
    ToggleGuidelines,
    Resize {
        width: u16,
        height: u16,
    },
    /// A background job finished (internal; never bound to a key).
    #[serde(skip)]
    JobDone(JobOutput),
    /// Review decisions are in the database (internal).
    #[serde(skip)]
    ReviewApplied {
        changes: crate::review::Applied,
        advance: bool,
    },
    #[serde(skip)]
    ReviewFailed(String),
    #[serde(skip)]
    VoteLoaded(Box<super::vote::VoteView>),
    #[serde(skip)]
    VoteFailed(String),
    /// Show an evaluation report (internal).
    #[serde(skip)]
    ShowEvalReport(Box<crate::eval::report::Report>),
    /// An item's votes are in the database (internal).
    #[serde(skip)]
    VoteSubmitted(String),
    #[serde(skip)]
    ReviewLoaded {
        stage: String,
        who: String,
        items: Vec<crate::review::ReviewItem>,
    },
}

impl Action {
    /// Parse a keymap `run` name such as "page_down".
    pub fn from_name(name: &str) -> Option<Action> {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    }
}
