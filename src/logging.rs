//! Tracing goes to a log file, never to the terminal (the TUI owns it).
//! Default: `$XDG_STATE_HOME/gleaner/gleaner.log`; `GLEANER_LOG=path` overrides,
//! `GLEANER_LOG_LEVEL` (or `RUST_LOG`) sets the filter.

use std::path::PathBuf;
use std::sync::Mutex;

pub fn default_log_path() -> PathBuf {
    if let Ok(p) = std::env::var("GLEANER_LOG") {
        return PathBuf::from(p);
    }
    dirs::state_dir()
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("gleaner")
        .join("gleaner.log")
}

/// Install the file logger once; logging is best-effort and never fails a command.
pub fn init(path: Option<PathBuf>) {
    let path = path.unwrap_or_else(default_log_path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let filter = std::env::var("GLEANER_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
}
