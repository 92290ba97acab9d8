//! `store` layer: the workspace directory, its SQLite database, and sidecar files.

pub mod db;
pub mod decisions;
pub mod parallel_parquet;
pub mod sidecar;
pub mod workspace;

pub use db::Db;
pub use workspace::{ImportReport, Workspace};

use std::path::{Path, PathBuf};

use crate::data::LoadOptions;
use crate::error::{UserError, file_error};

/// What a PATH argument names: a workspace, or a dataset (with or without one).
pub enum Target {
    Workspace(PathBuf),
    Dataset { file: PathBuf, workspace: PathBuf },
}

pub fn classify(path: &Path, workspace: Option<&Path>) -> Result<Target, UserError> {
    if Workspace::is_workspace(path) {
        return Ok(Target::Workspace(path.to_path_buf()));
    }
    if path.is_dir() {
        return Err(
            file_error(path, "is a directory but not a gleaner workspace")
                .with_hint("pass a dataset file, or a directory made by `gleaner import`"),
        );
    }
    if !path.exists() {
        return Err(file_error(path, "no such file or directory"));
    }
    let ws = workspace
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Workspace::default_dir_for(path));
    Ok(Target::Dataset {
        file: path.to_path_buf(),
        workspace: ws,
    })
}

/// Open the workspace PATH names, importing the dataset first if it has none yet.
/// Returns the workspace and, when an import ran, its report.
pub fn open_or_import(
    path: &Path,
    workspace: Option<&Path>,
    opts: &LoadOptions,
) -> Result<(Workspace, Option<ImportReport>), UserError> {
    match classify(path, workspace)? {
        Target::Workspace(dir) => Ok((Workspace::open(&dir)?, None)),
        Target::Dataset { workspace, .. } if Workspace::is_workspace(&workspace) => {
            let ws = Workspace::open(&workspace)?;
            if ws.source_changed() {
                tracing::warn!(
                    "source {} changed since import; showing the imported snapshot",
                    ws.config.source.path.display()
                );
            }
            Ok((ws, None))
        }
        Target::Dataset { file, workspace } => {
            let (ws, report) = Workspace::import(&file, Some(&workspace), opts, false)?;
            Ok((ws, Some(report)))
        }
    }
}
