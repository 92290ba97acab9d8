//! Per-stage sidecar files: `sidecars/<stage>.parquet`, one row per record `id`, whose
//! columns are named `<stage>.<column>` (e.g. `ds2.rate.score`). Stages write them;
//! the browser, filters, stats and export see them as extra columns aligned to the
//! snapshot. Source fields are never overwritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::Workspace;
use crate::error::{UserError, file_error, io_context};

/// Stage ids become file names; keep them to a safe alphabet.
fn valid_stage(stage: &str) -> bool {
    !stage.is_empty()
        && stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !stage.starts_with('.')
}

impl Workspace {
    pub fn sidecar_path(&self, stage: &str) -> PathBuf {
        self.sidecar_dir().join(format!("{stage}.parquet"))
    }

    /// Stage ids that have a sidecar, sorted.
    pub fn sidecars(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.sidecar_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".parquet")
                    .filter(|s| valid_stage(s))
                    .map(str::to_string)
            })
            .collect();
        out.sort();
        out
    }

    /// Write (replace) a stage's sidecar. `frame` needs an `id` column; every other
    /// column is stored as `<stage>.<name>` unless it already carries the prefix.
    pub fn write_sidecar(&self, stage: &str, frame: &DataFrame) -> Result<PathBuf, UserError> {
        if !valid_stage(stage) {
            return Err(UserError::new(format!(
                "invalid stage id `{stage}`: use letters, digits, '.', '_' and '-'"
            )));
        }
        let path = self.sidecar_path(stage);
        let fail = |e: PolarsError| file_error(&path, format!("cannot write sidecar: {e}"));
        frame
            .column("id")
            .map_err(|_| file_error(&path, "a sidecar needs an `id` column to join on"))?;
        let prefix = format!("{stage}.");
        let mut out = frame.clone();
        for name in frame.get_column_names_owned() {
            if name != "id" && !name.starts_with(&prefix) {
                out.rename(&name, format!("{prefix}{name}").into())
                    .map_err(fail)?;
            }
        }
        self.write_parquet_atomic(&path, &out)
    }

    /// Write `frame` to `path` through a temporary file and a rename, so a reader (or
    /// a crash) sees the old file or the new one, never half of one.
    pub fn write_parquet_atomic(
        &self,
        path: &Path,
        frame: &DataFrame,
    ) -> Result<PathBuf, UserError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_context(dir, e))?;
        }
        let tmp = path.with_extension("parquet.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| io_context(&tmp, e))?;
        ParquetWriter::new(&file)
            .finish(&mut frame.clone())
            .map_err(|e| file_error(path, format!("cannot write: {e}")))?;
        file.sync_all().map_err(|e| io_context(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_context(path, e))?;
        Ok(path.to_path_buf())
    }

    /// Where `gleaner run --shard` writes its part of a stage's sidecar.
    pub fn shard_sidecar_path(&self, stage: &str, shard: &str) -> PathBuf {
        self.sidecar_dir()
            .join("shards")
            .join(stage)
            .join(format!("{shard}.parquet"))
    }

    /// Shard sidecars not merged yet, by stage.
    pub fn shard_sidecars(&self) -> Vec<(String, Vec<PathBuf>)> {
        let root = self.sidecar_dir().join("shards");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let stage = entry.file_name().to_string_lossy().into_owned();
            if !valid_stage(&stage) {
                continue;
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(entry.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            files.sort();
            if !files.is_empty() {
                out.push((stage, files));
            }
        }
        out.sort();
        out
    }

    /// Every sidecar column, aligned to `ids` (null where a sidecar has no row).
    pub fn sidecar_columns(&self, ids: &StringChunked) -> Result<Vec<Column>, UserError> {
        let mut out = Vec::new();
        for stage in self.sidecars() {
            let path = self.sidecar_path(&stage);
            out.extend(aligned_columns(&path, ids)?);
        }
        Ok(out)
    }

    /// Sidecar column names and types, without reading their data.
    pub fn sidecar_schema(&self) -> Result<Schema, UserError> {
        let mut schema = Schema::default();
        for stage in self.sidecars() {
            let path = self.sidecar_path(&stage);
            let file = std::fs::File::open(&path).map_err(|e| io_context(&path, e))?;
            let df = ParquetReader::new(file)
                .with_slice(Some((0, 0)))
                .finish()
                .map_err(|e| file_error(&path, format!("cannot read sidecar: {e}")))?;
            for (name, dtype) in df.schema().iter() {
                if name != "id" {
                    schema.with_column(name.clone(), dtype.clone());
                }
            }
        }
        Ok(schema)
    }

    /// The snapshot (or some of its columns) with every sidecar column appended.
    pub fn read_frame_with_sidecars(
        &self,
        columns: Option<&[&str]>,
    ) -> Result<DataFrame, UserError> {
        let mut cols: Option<Vec<&str>> = columns.map(|c| c.to_vec());
        if let Some(c) = cols.as_mut()
            && !c.contains(&"id")
        {
            c.push("id");
        }
        let mut frame = self.read_frame(cols.as_deref())?;
        let ids = frame
            .column("id")
            .and_then(|c| c.str().cloned())
            .map_err(|e| UserError::new(format!("snapshot has no id column: {e}")))?;
        let extra = self.sidecar_columns(&ids)?;
        frame
            .hstack_mut(&extra)
            .map_err(|e| UserError::new(format!("cannot add sidecar columns: {e}")))?;
        Ok(frame)
    }
}

/// A sidecar's columns reordered to follow `ids`.
pub fn aligned_columns(path: &Path, ids: &StringChunked) -> Result<Vec<Column>, UserError> {
    let fail = |e: PolarsError| file_error(path, format!("cannot read sidecar: {e}"));
    let file = std::fs::File::open(path).map_err(|e| io_context(path, e))?;
    let side = ParquetReader::new(file).finish().map_err(fail)?;
    let side_ids = side
        .column("id")
        .and_then(|c| c.str().cloned())
        .map_err(|_| file_error(path, "sidecar has no string `id` column"))?;
    let position: HashMap<&str, IdxSize> = side_ids
        .iter()
        .enumerate()
        .filter_map(|(i, id)| id.map(|id| (id, i as IdxSize)))
        .collect();
    let idx: IdxCa = ids
        .iter()
        .map(|id| id.and_then(|id| position.get(id).copied()))
        .collect();
    side.columns()
        .iter()
        .filter(|c| c.name() != "id")
        .map(|c| c.take(&idx).map_err(fail))
        .collect()
}
