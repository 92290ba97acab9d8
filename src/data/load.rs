//! Load a dataset file: read, detect the schema, normalize every row in parallel,
//! assign stable ids, and collect bad rows.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde_json::Value;

use super::mapping::{Mapping, MappingFile, detect};
use super::normalize::Normalizer;
use super::reader::{FileKind, SourceBytes, SourceText, read_source};
use super::record::Record;
use crate::error::{RowError, UserError, file_error};

/// Rows inspected to detect the schema.
const DETECT_ROWS: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub mapping: Option<MappingFile>,
    /// Import the good rows and report the bad ones instead of failing.
    pub skip_bad_rows: bool,
    /// Ignore the dataset's id column and use content hashes.
    pub hash_ids: bool,
    /// Leave `messages` empty where instruction/input/output rebuild it
    /// (`Record::conversation_in_fields`): import does, to hold each text once.
    pub compact_conversations: bool,
}

pub struct Loaded {
    pub records: Vec<Record>,
    /// The rows' JSON text; `Record::raw_span` indexes into it.
    pub source: SourceBytes,
    pub rejects: Vec<RowError>,
    pub mapping: Mapping,
    pub kind: FileKind,
    /// Rows in the file (good and bad).
    pub total_rows: usize,
    /// How ids were assigned: "column:<name>", "hash" or "column+hash".
    pub id_source: String,
}

pub fn load_dataset(path: &Path, opts: &LoadOptions) -> Result<Loaded, UserError> {
    load_dataset_then(path, opts, |_, _| ()).map(|(loaded, ())| loaded)
}

/// [`load_dataset`], running `meanwhile` on the source as read (its `bytes` are what
/// `Loaded::source` will hold) on its own thread while the rows are normalized: import
/// keeps the workspace's copy of the rows there, so the disk works while the CPUs
/// parse. The flag turns true when the load has failed, so `meanwhile` can stop early.
pub fn load_dataset_then<R: Send>(
    path: &Path,
    opts: &LoadOptions,
    meanwhile: impl FnOnce(&SourceText, &AtomicBool) -> R + Send,
) -> Result<(Loaded, R), UserError> {
    let started = std::time::Instant::now();
    let source = read_source(path)?;
    tracing::info!(
        rows = source.rows.len(),
        secs = started.elapsed().as_secs_f64(),
        "read source"
    );
    if source.rows.is_empty() && source.broken.is_empty() {
        return Err(file_error(path, "file is empty: no records found"));
    }
    let failed = AtomicBool::new(false);
    let (built, side) = std::thread::scope(|scope| {
        let side = scope.spawn(|| meanwhile(&source, &failed));
        let built = normalize_source(path, &source, opts, started);
        failed.store(built.is_err(), Ordering::Relaxed);
        (built, side.join())
    });
    let side = side.map_err(|_| UserError::new("internal: the thread beside the import failed"))?;
    let built = built?;
    Ok((
        Loaded {
            records: built.records,
            source: source.bytes,
            rejects: built.rejects,
            mapping: built.mapping,
            kind: source.kind,
            total_rows: built.total_rows,
            id_source: built.id_source,
        },
        side,
    ))
}

/// What [`normalize_source`] makes of the rows.
struct Built {
    records: Vec<Record>,
    rejects: Vec<RowError>,
    mapping: Mapping,
    total_rows: usize,
    id_source: String,
}

fn normalize_source(
    path: &Path,
    source: &SourceText,
    opts: &LoadOptions,
    started: std::time::Instant,
) -> Result<Built, UserError> {
    let unit = source.unit;
    let mapping = resolve_mapping(path, source, opts)?;
    let normalizer = Normalizer::new(&mapping).compact(opts.compact_conversations);
    let results: Vec<Result<Record, RowError>> = source
        .rows
        .par_iter()
        .map(|span| {
            let text = std::str::from_utf8(source.row_bytes(span)).expect("checked by the reader");
            normalizer.normalize(span.line, text).map(|mut record| {
                record.raw_span = Some((span.start, span.end));
                if opts.compact_conversations {
                    record.compact_conversation();
                }
                record
            })
        })
        .collect();
    let total_rows = source.rows.len() + source.broken.len();
    let mut rejects = source.broken.clone();
    // Collected in place (the results' buffer is reused): a million rows' structs are
    // ~300 MB, and a second array would raise the import's peak memory by as much.
    let good: Vec<Record> = results
        .into_iter()
        .filter_map(|r| r.map_err(|e| rejects.push(e)).ok())
        .collect();
    tracing::info!(secs = started.elapsed().as_secs_f64(), "normalized");
    let (records, id_source) = assign_ids(good, &mut rejects, opts.hash_ids, &mapping);
    for r in &mut rejects {
        r.unit = unit;
    }
    rejects.sort_by_key(|r| r.line);
    if !rejects.is_empty() && !opts.skip_bad_rows {
        let first = &rejects[0];
        let more = match rejects.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more bad row{})", if n == 1 { "" } else { "s" }),
        };
        let mut err = UserError::in_file(path, first);
        err.message.push_str(&more);
        return Err(err.with_hint(
            "fix the row, or pass --skip-bad-rows to import the rest and write a rejects report",
        ));
    }
    if records.is_empty() {
        return Err(file_error(
            path,
            format!("no usable records: all {total_rows} rows were rejected"),
        )
        .with_hint("check the column map (--map) against the file's fields"));
    }
    Ok(Built {
        records,
        rejects,
        mapping,
        total_rows,
        id_source,
    })
}

fn resolve_mapping(
    path: &Path,
    source: &SourceText,
    opts: &LoadOptions,
) -> Result<Mapping, UserError> {
    let mut keys = BTreeSet::new();
    let mut first_turns: Option<Value> = None;
    let mut parsed = 0;
    for span in &source.rows {
        if parsed >= DETECT_ROWS {
            break;
        }
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(source.row_bytes(span)) else {
            continue;
        };
        parsed += 1;
        if first_turns.is_none() {
            first_turns = obj
                .get("messages")
                .or_else(|| obj.get("conversations"))
                .cloned();
        }
        keys.extend(obj.keys().cloned());
    }
    let detected = detect(&keys, first_turns.as_ref());
    match (&opts.mapping, detected) {
        (Some(file), detected) => file.resolve(detected.as_ref()),
        (None, Some(m)) => Ok(m),
        (None, None) if parsed == 0 => {
            // Nothing parses: report the first row's own error.
            let first = source.rows.first().map(|s| s.line).unwrap_or(1);
            let text = source
                .rows
                .first()
                .map(|s| String::from_utf8_lossy(source.row_bytes(s)).into_owned())
                .unwrap_or_default();
            let mapping = super::mapping::preset(super::mapping::Format::Alpaca);
            let err = match Normalizer::new(&mapping).normalize(first, &text) {
                Err(e) => e,
                Ok(_) => RowError::new(first, None, "no record could be read"),
            };
            let mut err = err;
            err.unit = source.unit;
            Err(UserError::in_file(path, &err)
                .with_hint("check that the file is JSON Lines, a JSON array, CSV or Parquet"))
        }
        (None, None) => {
            let seen: Vec<&str> = keys.iter().map(String::as_str).collect();
            Err(file_error(
                path,
                format!(
                    "unknown record schema: fields seen: {}; expected Alpaca (instruction/output), \
                     Dolly (instruction/response), ShareGPT (conversations), messages, \
                     preference (prompt/chosen/rejected) or prompt/completion",
                    seen.join(", ")
                ),
            )
            .with_hint(
                "pass --map map.toml with [columns] prompt/query/response or messages (see README)",
            ))
        }
    }
}

/// The dataset's own id where present and unique, a content hash otherwise. A record
/// arrives with its row's own id in `id`, or an empty one.
fn assign_ids(
    mut records: Vec<Record>,
    rejects: &mut Vec<RowError>,
    hash_ids: bool,
    mapping: &Mapping,
) -> (Vec<Record>, String) {
    let id_col = mapping.columns.id.clone().unwrap_or_else(|| "id".into());
    if hash_ids {
        records.iter_mut().for_each(|r| r.id.clear());
    }
    // Which rows repeat an id seen earlier: rejected, and dropped in place. Found by
    // sorting (hash, row) pairs on every core rather than one hash-set insert per row.
    let duplicate = find_repeats(&records);
    let any_duplicate = duplicate.iter().any(|d| d.is_some());
    for (r, first) in records.iter().zip(&duplicate) {
        if let Some(first) = first {
            rejects.push(RowError::new(
                r.line,
                Some(&id_col),
                format!(
                    "duplicate id \"{}\" (first seen on line {})",
                    r.id, records[*first].line
                ),
            ));
        }
    }
    if any_duplicate {
        let mut i = 0;
        records.retain(|_| {
            i += 1;
            duplicate[i - 1].is_none()
        });
    }
    let used_column = records.iter().any(|r| !r.id.is_empty());
    let used_hash = records.iter().any(|r| r.id.is_empty());
    if used_hash {
        // Hash ids go last so they can never collide with a real id.
        let hashes: Vec<Option<String>> = records
            .par_iter()
            .map(|r| r.id.is_empty().then(|| content_hash(r)))
            .collect();
        let mut taken: std::collections::HashSet<String, xxhash_rust::xxh3::Xxh3DefaultBuilder> =
            records
                .iter()
                .filter(|r| !r.id.is_empty())
                .map(|r| r.id.clone())
                .collect();
        for (record, base) in records.iter_mut().zip(hashes) {
            let Some(base) = base else { continue };
            let mut id = base.clone();
            let mut k = 2;
            while taken.contains(&id) {
                id = format!("{base}-{k}");
                k += 1;
            }
            taken.insert(id.clone());
            record.id = id;
        }
    }
    let source = match (used_column, used_hash) {
        (true, false) => format!("column:{id_col}"),
        (true, true) => format!("column:{id_col}+hash"),
        _ => "hash".to_string(),
    };
    (records, source)
}

/// For each record whose (non-empty) id an earlier record already has, that earlier
/// record's index.
fn find_repeats(records: &[Record]) -> Vec<Option<usize>> {
    let mut keyed: Vec<(u64, usize)> = records
        .par_iter()
        .enumerate()
        .filter(|(_, r)| !r.id.is_empty())
        .map(|(i, r)| (xxhash_rust::xxh3::xxh3_64(r.id.as_bytes()), i))
        .collect();
    keyed.par_sort_unstable();
    let mut repeats = vec![None; records.len()];
    // Rows sharing a hash, in row order: each is compared with the earlier ones (a run
    // is one id, or very rarely two ids whose hashes collide).
    for run in keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        for (k, &(_, i)) in run.iter().enumerate() {
            if let Some(&(_, first)) = run[..k]
                .iter()
                .find(|(_, j)| repeats[*j].is_none() && records[*j].id == records[i].id)
            {
                repeats[i] = Some(first);
            }
        }
    }
    repeats
}

/// 16 hex digits of xxh3-128 over the conversation and preference answers.
pub fn content_hash(r: &Record) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    if r.conversation_in_fields {
        // The same bytes as the full conversation would give, piece by piece.
        let turns: [(&str, &[&str]); 3] = [
            ("system", &[r.system.as_deref().unwrap_or("")]),
            ("user", &r.user_turn_parts()),
            ("assistant", &[r.output.as_deref().unwrap_or("")]),
        ];
        for (role, parts) in turns {
            if role == "system" && r.system.is_none() {
                continue;
            }
            h.update(role.as_bytes());
            h.update(&[0]);
            for part in parts {
                h.update(part.as_bytes());
            }
            h.update(&[0]);
        }
    }
    for m in &r.messages {
        h.update(m.role.as_bytes());
        h.update(&[0]);
        h.update(m.content.as_bytes());
        h.update(&[0]);
    }
    for extra in [&r.chosen, &r.rejected].into_iter().flatten() {
        h.update(extra.as_bytes());
        h.update(&[1]);
    }
    format!("{:016x}", h.digest128() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_point_at_the_first_row_with_the_id() {
        let records: Vec<Record> = ["a", "b", "a", "c", "b", "a", "", ""]
            .iter()
            .map(|id| Record {
                id: id.to_string(),
                ..Record::default()
            })
            .collect();
        assert_eq!(
            find_repeats(&records),
            [None, None, Some(0), None, Some(1), Some(0), None, None]
        );
    }
}
