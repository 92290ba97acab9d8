//! `tui`: the terminal browser. One serializable [`action::Action`] enum, one reducer
//! ([`reducer::update`]), rendering that only reads [`state::AppState`], and background
//! jobs ([`jobs`]) that report over a channel and can be cancelled.

pub mod action;
pub mod app;
pub mod jobs;
pub mod keymap;
pub mod reducer;
pub mod render;
pub mod review;
pub mod state;
pub mod theme;
pub mod vote;
pub mod vote_queue;

use crate::error::UserError;
use crate::store::Workspace;

/// Open the workspace in the terminal UI until the user quits.
pub fn run(ws: Workspace, theme: Option<&str>) -> Result<(), UserError> {
    app::run_terminal(ws, theme, app::StartScreen::Browse)
}
