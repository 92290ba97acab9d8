//! Background work for the UI. Each request runs on its own thread with a cancel flag;
//! a newer request of the same kind cancels the older one (latest wins), and results
//! carry a generation number so stale ones are dropped by the reducer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex};

use polars::prelude::*;

use crate::data::export::{ExportFormat, export_frame};
use crate::data::filter;
use crate::data::frame::{RECORD_COLUMNS, frame_to_records};
use crate::data::record::Record;
use crate::data::record::user_turn;
use crate::data::stats::{Distribution, distribution};
use crate::stages::recipe::Recipe;
use crate::stages::runner::{RunEvent, RunOptions, StageSummary, run_recipe_with};
use crate::store::Workspace;
use crate::store::workspace::ROW_GROUP_ROWS;

/// What the UI reads: the snapshot file and where exports go.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The workspace directory (recipes run on it; sidecars are listed from it).
    pub workspace: PathBuf,
    pub path: PathBuf,
    pub exports: PathBuf,
    pub rows: usize,
    /// Stage sidecars whose columns join the browse table.
    pub sidecars: Vec<PathBuf>,
}

impl Snapshot {
    fn read(&self, offset: usize, len: usize, columns: &[&str]) -> PolarsResult<DataFrame> {
        let file = std::fs::File::open(&self.path)?;
        ParquetReader::new(file)
            .with_slice(Some((offset, len)))
            .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
            .finish()
    }

    pub fn schema(&self) -> PolarsResult<Schema> {
        let file = std::fs::File::open(&self.path)?;
        let df = ParquetReader::new(file).with_slice(Some((0, 0))).finish()?;
        Ok(df.schema().as_ref().clone())
    }

    /// Snapshot columns plus every sidecar column: what filters may name.
    pub fn full_schema(&self) -> PolarsResult<Schema> {
        let mut schema = self.schema()?;
        for path in &self.sidecars {
            let file = std::fs::File::open(path)?;
            let df = ParquetReader::new(file).with_slice(Some((0, 0))).finish()?;
            for (name, dtype) in df.schema().iter() {
                if name != "id" {
                    schema.with_column(name.clone(), dtype.clone());
                }
            }
        }
        Ok(schema)
    }

    /// The stages of `sidecars` (their file stems).
    pub fn stage_names(&self) -> Vec<String> {
        self.sidecars
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect()
    }

    /// Append the sidecar columns, aligned by id, to a frame that has `id`.
    pub fn with_sidecars(&self, mut df: DataFrame) -> Result<DataFrame, String> {
        if self.sidecars.is_empty() {
            return Ok(df);
        }
        let ids = df
            .column("id")
            .and_then(|c| c.str().cloned())
            .map_err(err_string)?;
        for path in &self.sidecars {
            let cols = crate::store::sidecar::aligned_columns(path, &ids).map_err(|e| e.message)?;
            df.hstack_mut(&cols).map_err(err_string)?;
        }
        Ok(df)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Table,
    Record,
    View,
    Search,
    Histogram,
    Export,
    Recipe,
}

#[derive(Debug, Clone)]
pub enum JobRequest {
    /// Load the browse columns of every row.
    Table {
        columns: Vec<String>,
    },
    Record {
        row: u32,
    },
    /// Recompute the visible rows: filter over all rows, then sort.
    View {
        generation: u64,
        filter: Option<String>,
        sort: Option<(String, bool)>,
        table: Arc<DataFrame>,
    },
    Search {
        generation: u64,
        query: String,
    },
    Histogram {
        generation: u64,
        column: String,
        view: Arc<Vec<u32>>,
        table: Arc<DataFrame>,
    },
    Export {
        rows: Vec<u32>,
    },
    /// Run a recipe file on the workspace, reporting progress as it goes.
    Recipe {
        path: PathBuf,
    },
    /// Load the browse table again with the workspace's current sidecars.
    Reload,
}

impl JobRequest {
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Table { .. } => JobKind::Table,
            JobRequest::Record { .. } => JobKind::Record,
            JobRequest::View { .. } => JobKind::View,
            JobRequest::Search { .. } => JobKind::Search,
            JobRequest::Histogram { .. } => JobKind::Histogram,
            JobRequest::Export { .. } => JobKind::Export,
            JobRequest::Recipe { .. } => JobKind::Recipe,
            JobRequest::Reload => JobKind::Table,
        }
    }
}

#[derive(Debug, Clone)]
pub enum JobOutput {
    Table(Result<Arc<DataFrame>, String>),
    Record {
        row: u32,
        result: Result<Arc<Record>, String>,
    },
    View {
        generation: u64,
        result: Result<Arc<Vec<u32>>, String>,
    },
    Search {
        generation: u64,
        result: Result<Arc<Vec<u32>>, String>,
    },
    SearchProgress {
        generation: u64,
        done: usize,
        total: usize,
    },
    Histogram {
        generation: u64,
        result: Result<Arc<Distribution>, String>,
    },
    Exported(Result<(PathBuf, usize), String>),
    /// News from a running recipe.
    Run(RunEvent),
    /// The stages whose sidecars the next table holds (sent just before it).
    Stages(Vec<String>),
    RunDone(Result<Vec<StageSummary>, String>),
}

// Outputs hold frames; equality is only needed so `Action` can derive it.
impl PartialEq for JobOutput {
    fn eq(&self, _other: &Self) -> bool {
        false
    }
}

/// Runs requests on threads and hands results back over a channel.
pub struct Jobs {
    snapshot: Snapshot,
    tx: Sender<JobOutput>,
    pub rx: Receiver<JobOutput>,
    running: HashMap<JobKind, Arc<AtomicBool>>,
    /// Jobs started and not yet reported back.
    pub in_flight: usize,
    /// The newest record request, taken by the record loader thread.
    record_slot: Arc<(Mutex<Option<u32>>, Condvar)>,
    record_loader: bool,
}

impl Jobs {
    pub fn new(snapshot: Snapshot) -> Self {
        let (tx, rx) = channel();
        Self {
            snapshot,
            tx,
            rx,
            running: HashMap::new(),
            in_flight: 0,
            record_slot: Arc::new((Mutex::new(None), Condvar::new())),
            record_loader: false,
        }
    }

    /// Record loads go to one long-lived thread that only ever loads the newest request:
    /// holding `j` does not queue a read per row, and rows of the same row group come
    /// from its cache.
    fn request_record(&mut self, row: u32) {
        if !self.record_loader {
            self.record_loader = true;
            let slot = self.record_slot.clone();
            let tx = self.tx.clone();
            let snapshot = self.snapshot.clone();
            std::thread::spawn(move || record_loader(snapshot, slot, tx));
        }
        let (lock, cv) = &*self.record_slot;
        let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
        if pending.replace(row).is_some() {
            // The replaced request will never report back.
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        self.in_flight += 1;
        cv.notify_one();
    }

    pub fn cancel(&mut self, kind: JobKind) {
        if let Some(flag) = self.running.remove(&kind) {
            flag.store(true, Ordering::Relaxed);
        }
    }

    pub fn start(&mut self, req: JobRequest) {
        let req = match req {
            JobRequest::Record { row } => return self.request_record(row),
            JobRequest::Recipe { path } => return self.start_recipe(path),
            JobRequest::Reload => match self.refresh_sidecars() {
                Ok(columns) => JobRequest::Table { columns },
                Err(e) => {
                    self.in_flight += 1;
                    let _ = self.tx.send(JobOutput::Table(Err(e)));
                    return;
                }
            },
            other => other,
        };
        self.cancel(req.kind());
        let cancel = Arc::new(AtomicBool::new(false));
        self.running.insert(req.kind(), cancel.clone());
        let tx = self.tx.clone();
        let snapshot = self.snapshot.clone();
        self.in_flight += 1;
        std::thread::spawn(move || {
            let out = run(&snapshot, req, &cancel, &tx);
            let _ = tx.send(out);
        });
    }

    /// Pick up sidecars written since the app opened; the browse columns to load.
    fn refresh_sidecars(&mut self) -> Result<Vec<String>, String> {
        let ws = Workspace::open(&self.snapshot.workspace).map_err(|e| e.message)?;
        self.snapshot.sidecars = ws.sidecars().iter().map(|s| ws.sidecar_path(s)).collect();
        let schema = self.snapshot.schema().map_err(err_string)?;
        Ok(super::state::browse_column_names(&schema))
    }

    /// A recipe runs on its own thread until done or cancelled (`JobKind::Recipe`).
    fn start_recipe(&mut self, path: PathBuf) {
        let cancel = Arc::new(AtomicBool::new(false));
        self.running.insert(JobKind::Recipe, cancel.clone());
        let tx = self.tx.clone();
        let dir = self.snapshot.workspace.clone();
        self.in_flight += 1;
        std::thread::spawn(move || {
            let result = (|| {
                let ws = Workspace::open(&dir)?;
                let recipe = Recipe::load(&path)?;
                run_recipe_with(&ws, &recipe, &RunOptions::default(), cancel, &mut |e| {
                    let _ = tx.send(JobOutput::Run(e.clone()));
                })
            })()
            .map_err(|e| match e.hint {
                Some(h) => format!("{} ({h})", e.message),
                None => e.message,
            });
            let _ = tx.send(JobOutput::RunDone(result));
        });
    }

    /// Count a received output as finished (progress reports do not finish a job).
    pub fn note_received(&mut self, out: &JobOutput) {
        if !matches!(
            out,
            JobOutput::SearchProgress { .. } | JobOutput::Run(_) | JobOutput::Stages(_)
        ) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }
}

fn err_string(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn run(
    snapshot: &Snapshot,
    req: JobRequest,
    cancel: &AtomicBool,
    tx: &Sender<JobOutput>,
) -> JobOutput {
    match req {
        JobRequest::Table { columns } => {
            let _ = tx.send(JobOutput::Stages(snapshot.stage_names()));
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            JobOutput::Table(
                snapshot
                    .read(0, snapshot.rows, &cols)
                    .map_err(err_string)
                    .and_then(|df| snapshot.with_sidecars(df))
                    .map(|mut df| {
                        // One chunk per column: gathers for each frame stay O(visible rows).
                        df.rechunk_mut();
                        Arc::new(df)
                    }),
            )
        }
        JobRequest::Record { row } => JobOutput::Record {
            row,
            result: load_record(snapshot, row, &mut None).map(Arc::new),
        },
        JobRequest::View {
            generation,
            filter,
            sort,
            table,
        } => JobOutput::View {
            generation,
            result: compute_view(snapshot, filter.as_deref(), sort.as_ref(), &table).map(Arc::new),
        },
        JobRequest::Search { generation, query } => JobOutput::Search {
            generation,
            result: search(snapshot, &query, cancel, |done| {
                let _ = tx.send(JobOutput::SearchProgress {
                    generation,
                    done,
                    total: snapshot.rows,
                });
            })
            .map(Arc::new),
        },
        JobRequest::Histogram {
            generation,
            column,
            view,
            table,
        } => JobOutput::Histogram {
            generation,
            result: histogram(&column, &view, &table).map(Arc::new),
        },
        JobRequest::Export { rows } => JobOutput::Exported(export_rows(snapshot, rows)),
        JobRequest::Recipe { .. } | JobRequest::Reload => unreachable!("handled in start"),
    }
}

fn record_loader(
    snapshot: Snapshot,
    slot: Arc<(Mutex<Option<u32>>, Condvar)>,
    tx: Sender<JobOutput>,
) {
    let mut cache = None;
    loop {
        let row = {
            let (lock, cv) = &*slot;
            let mut pending = lock.lock().unwrap_or_else(|e| e.into_inner());
            while pending.is_none() {
                pending = cv.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            pending.take().expect("checked")
        };
        let result = load_record(&snapshot, row, &mut cache).map(Arc::new);
        if tx.send(JobOutput::Record { row, result }).is_err() {
            return; // the app is gone
        }
    }
}

/// The row group a record was last read from: (first row, its rows).
pub type RowGroupCache = Option<(usize, DataFrame)>;

/// One record by snapshot row, reading (and caching) its whole row group.
pub fn load_record(
    snapshot: &Snapshot,
    row: u32,
    cache: &mut RowGroupCache,
) -> Result<Record, String> {
    let row = row as usize;
    if row >= snapshot.rows {
        return Err(format!("row {row} not found"));
    }
    let start = row - row % ROW_GROUP_ROWS;
    let cached = matches!(cache, Some((s, _)) if *s == start);
    if !cached {
        let schema = snapshot.schema().map_err(err_string)?;
        let cols: Vec<&str> = RECORD_COLUMNS
            .iter()
            .copied()
            .filter(|c| schema.contains(c))
            .collect();
        let len = ROW_GROUP_ROWS.min(snapshot.rows - start);
        let df = snapshot.read(start, len, &cols).map_err(err_string)?;
        *cache = Some((start, df));
    }
    let (_, group) = cache.as_ref().expect("filled above");
    frame_to_records(&group.slice((row - start) as i64, 1))
        .map_err(err_string)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("row {row} not found"))
}

fn take_rows(table: &DataFrame, rows: &[u32]) -> PolarsResult<DataFrame> {
    let idx = IdxCa::from_vec("idx".into(), rows.to_vec());
    table.take(&idx)
}

pub fn compute_view(
    snapshot: &Snapshot,
    filter_src: Option<&str>,
    sort: Option<&(String, bool)>,
    table: &DataFrame,
) -> Result<Vec<u32>, String> {
    let mut rows: Vec<u32> = match filter_src {
        None => (0..table.height() as u32).collect(),
        Some(src) => {
            let schema = snapshot.full_schema().map_err(err_string)?;
            let f = filter::compile(src, &schema).map_err(err_string)?;
            // Columns the browse table holds come from memory; full texts are read from
            // the snapshot, only the ones the filter names.
            let table_schema = table.schema();
            let (in_table, on_disk): (Vec<&str>, Vec<&str>) = f
                .columns
                .iter()
                .map(String::as_str)
                .partition(|c| table_schema.contains(c));
            let mut frame = if in_table.is_empty() {
                DataFrame::new(table.height(), vec![]).map_err(err_string)?
            } else {
                table.select(in_table).map_err(err_string)?
            };
            if !on_disk.is_empty() {
                let read = snapshot
                    .read(0, snapshot.rows, &on_disk)
                    .map_err(err_string)?;
                frame.hstack_mut(read.columns()).map_err(err_string)?;
            }
            filter::matching_rows(&frame, &f).map_err(err_string)?
        }
    };
    if let Some((column, descending)) = sort {
        let col = table.column(column).map_err(err_string)?;
        let idx = IdxCa::from_vec("idx".into(), rows.clone());
        let values = col
            .as_materialized_series()
            .take(&idx)
            .map_err(err_string)?;
        let order = values.arg_sort(
            SortOptions::default()
                .with_order_descending(*descending)
                .with_nulls_last(true)
                .with_maintain_order(true),
        );
        rows = order
            .into_no_null_iter()
            .map(|i| rows[i as usize])
            .collect();
    }
    Ok(rows)
}

/// Rows whose id or any turn contains `query` (case-insensitive unless it has capitals).
pub fn search(
    snapshot: &Snapshot,
    query: &str,
    cancel: &AtomicBool,
    progress: impl Fn(usize),
) -> Result<Vec<u32>, String> {
    let smart_case = query.chars().any(char::is_uppercase);
    let needle = if smart_case {
        query.to_string()
    } else {
        query.to_lowercase()
    };
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    let hit = |text: &str| -> bool {
        if smart_case {
            finder.find(text.as_bytes()).is_some()
        } else if text.is_ascii() {
            finder.find(text.to_ascii_lowercase().as_bytes()).is_some()
        } else {
            finder.find(text.to_lowercase().as_bytes()).is_some()
        }
    };
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < snapshot.rows {
        if cancel.load(Ordering::Relaxed) {
            return Err("cancelled".into());
        }
        let len = ROW_GROUP_ROWS.min(snapshot.rows - offset);
        let df = snapshot
            .read(
                offset,
                len,
                &["id", "system", "instruction", "input", "output", "messages"],
            )
            .map_err(err_string)?;
        let text = |name: &str| -> Result<StringChunked, String> {
            Ok(df
                .column(name)
                .map_err(err_string)?
                .str()
                .map_err(err_string)?
                .clone())
        };
        let ids = text("id")?;
        let single: Vec<StringChunked> = ["system", "instruction", "input", "output"]
            .into_iter()
            .map(text)
            .collect::<Result<_, _>>()?;
        let messages = df
            .column("messages")
            .map_err(err_string)?
            .list()
            .map_err(err_string)?
            .clone();
        for i in 0..df.height() {
            let mut found = ids.get(i).is_some_and(&hit);
            if !found {
                match messages.get_as_series(i) {
                    Some(turns) => {
                        let contents = turns
                            .struct_()
                            .and_then(|s| s.field_by_name("content"))
                            .map_err(err_string)?;
                        found = contents
                            .str()
                            .map_err(err_string)?
                            .iter()
                            .flatten()
                            .any(&hit);
                    }
                    // A single-turn row stores its conversation as these fields only
                    // (data/frame.rs); the user turn joins instruction and input.
                    None => {
                        let [system, instruction, input, output] =
                            [0, 1, 2, 3].map(|c| single[c].get(i).unwrap_or(""));
                        // Only a query with a newline can match across the join.
                        found = [system, instruction, input, output].into_iter().any(&hit)
                            || (needle.contains('\n')
                                && !instruction.is_empty()
                                && !input.is_empty()
                                && hit(&user_turn(instruction, input)));
                    }
                }
            }
            if found {
                out.push((offset + i) as u32);
            }
        }
        offset += len;
        progress(offset);
    }
    Ok(out)
}

fn histogram(column: &str, view: &[u32], table: &DataFrame) -> Result<Distribution, String> {
    let frame =
        take_rows(&table.select([column]).map_err(err_string)?, view).map_err(err_string)?;
    let col = frame.column(column).map_err(err_string)?;
    distribution(column, col, 20).map_err(err_string)
}

fn export_rows(snapshot: &Snapshot, mut rows: Vec<u32>) -> Result<(PathBuf, usize), String> {
    rows.sort_unstable();
    let file = std::fs::File::open(&snapshot.path).map_err(err_string)?;
    let all = ParquetReader::new(file).finish().map_err(err_string)?;
    let frame = take_rows(&all, &rows).map_err(err_string)?;
    let stamp = crate::util::now_rfc3339().replace([':', '-'], "");
    let out = snapshot.exports.join(format!("marked-{stamp}.jsonl"));
    let report = export_frame(&frame, &out, ExportFormat::Jsonl).map_err(|e| e.message)?;
    Ok((report.output, report.rows))
}
