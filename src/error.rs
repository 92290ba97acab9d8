//! User-facing errors: one readable line plus an optional hint, never a backtrace.

use std::fmt;
use std::path::Path;

/// Where in an input file a problem sits. `line` is the 1-based line for JSONL,
/// the record's starting line for JSON arrays, and the row number for CSV/Parquet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// "line" for text formats, "row" for Parquet.
    pub unit: &'static str,
    pub line: usize,
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    pub fn new(line: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            unit: "line",
            line,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "{} {}: field `{}`: {}",
                self.unit, self.line, field, self.message
            ),
            None => write!(f, "{} {}: {}", self.unit, self.line, self.message),
        }
    }
}

/// An error a user can act on. `hint` says what to do next.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A bad row in a file, named by file, line and field.
    pub fn in_file(file: &Path, row: &RowError) -> Self {
        Self::new(format!("{}: {}", file.display(), row))
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for an error about a whole file (not a row).
pub fn file_error(file: &Path, message: impl fmt::Display) -> UserError {
    UserError::new(format!("{}: {}", file.display(), message))
}

/// Remember which file an I/O error came from.
pub fn io_context(file: &Path, err: std::io::Error) -> UserError {
    let what = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => err.to_string(),
    };
    file_error(file, what)
}
