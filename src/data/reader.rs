//! Reading a dataset file into row-sized JSON texts.
//!
//! Every input format (JSONL, JSON array, CSV, Parquet, optionally gzip/zstd compressed)
//! becomes one buffer of JSON text plus the span and source line of each row, so that
//! parsing and normalization downstream are format-agnostic and can run in parallel.

use std::io::Read;
use std::path::Path;

use polars::prelude::*;
use serde_json::Value;

use crate::error::{RowError, UserError, file_error, io_context};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Jsonl,
    JsonArray,
    Csv,
    Parquet,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Jsonl => "jsonl",
            FileKind::JsonArray => "json",
            FileKind::Csv => "csv",
            FileKind::Parquet => "parquet",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One row's JSON text inside [`SourceText::bytes`].
#[derive(Debug, Clone, Copy)]
pub struct RowSpan {
    pub line: usize,
    pub start: usize,
    pub end: usize,
}

/// A file's text: read into memory, or, for a large plain file, mapped from the page
/// cache. Mapping saves the copy and, above all, the fresh pages the kernel must zero
/// for a buffer the size of the file (~1 s of CPU for 700 MB on a VM). As with polars'
/// and ripgrep's mapped reads, another process truncating the file during the import
/// would stop gleaner with SIGBUS; the file itself is never written.
pub enum SourceBytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Default for SourceBytes {
    fn default() -> Self {
        SourceBytes::Owned(Vec::new())
    }
}

impl std::ops::Deref for SourceBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SourceBytes::Owned(v) => v,
            SourceBytes::Mapped(m) => m,
        }
    }
}

/// Plain files at least this large are mapped rather than read.
const MAP_AT_BYTES: u64 = 16 << 20;

/// A whole input file as JSON rows.
pub struct SourceText {
    pub kind: FileKind,
    pub bytes: SourceBytes,
    pub rows: Vec<RowSpan>,
    /// Rows that could not even be cut out of the file (bad UTF-8, broken CSV record).
    pub broken: Vec<RowError>,
    /// "line" or "row", used in messages.
    pub unit: &'static str,
    /// `bytes` are the file's own bytes, unchanged (not decompressed, converted or
    /// stripped of a BOM): the file itself can stand for them.
    pub same_as_file: bool,
}

impl SourceText {
    pub fn row_bytes(&self, span: &RowSpan) -> &[u8] {
        &self.bytes[span.start..span.end]
    }
}

pub fn read_source(path: &Path) -> Result<SourceText, UserError> {
    let meta = std::fs::metadata(path).map_err(|e| io_context(path, e))?;
    if meta.is_dir() {
        return Err(file_error(path, "is a directory, not a dataset file")
            .with_hint("pass a .jsonl, .json, .csv or .parquet file"));
    }
    let (kind_hint, compression) = kind_from_name(path);
    if kind_hint == Some(FileKind::Parquet) {
        return read_parquet(path);
    }
    let mut bytes = read_all(path, compression, meta.len())?;
    let had_bom = bytes.starts_with(&[0xEF, 0xBB, 0xBF]);
    if had_bom {
        bytes = SourceBytes::Owned(bytes[3..].to_vec());
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(file_error(path, "file is empty: no records found")
            .with_hint("check that you passed the right file"));
    }
    let kind = match kind_hint {
        Some(FileKind::Csv) => FileKind::Csv,
        // `.json` files are often JSON Lines in practice: look at the first byte.
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => FileKind::JsonArray,
            Some(b'{') => FileKind::Jsonl,
            _ if kind_hint == Some(FileKind::Jsonl) => FileKind::Jsonl,
            _ => {
                return Err(file_error(
                    path,
                    "unrecognised file: expected JSON Lines, a JSON array, CSV or Parquet",
                )
                .with_hint("name the file .jsonl, .json, .csv or .parquet"));
            }
        },
    };
    let same_as_file = !had_bom && compression == Compression::None;
    let mut source = match kind {
        FileKind::Jsonl => split_lines(bytes),
        FileKind::JsonArray => split_array(path, bytes)?,
        FileKind::Csv => return csv_to_rows(path, &bytes),
        FileKind::Parquet => return unreachable_kind(path),
    };
    source.same_as_file = same_as_file;
    Ok(source)
}

fn unreachable_kind(path: &Path) -> Result<SourceText, UserError> {
    Err(file_error(path, "internal: parquet handled earlier"))
}

fn kind_from_name(path: &Path) -> (Option<FileKind>, Compression) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s.to_string(), Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s.to_string(), Compression::Zstd)
    } else {
        (name.clone(), Compression::None)
    };
    let kind = if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        Some(FileKind::Jsonl)
    } else if stem.ends_with(".json") {
        None
    } else if stem.ends_with(".csv") {
        Some(FileKind::Csv)
    } else if stem.ends_with(".parquet") {
        Some(FileKind::Parquet)
    } else {
        None
    };
    (kind, compression)
}

fn read_all(path: &Path, compression: Compression, size: u64) -> Result<SourceBytes, UserError> {
    let file = std::fs::File::open(path).map_err(|e| io_context(path, e))?;
    if compression == Compression::None && size >= MAP_AT_BYTES {
        // SAFETY: the map is read only; see `SourceBytes` for a concurrent truncation.
        let mapped = unsafe { memmap2::MmapOptions::new().populate().map(&file) };
        if let Ok(map) = mapped {
            return Ok(SourceBytes::Mapped(map));
        }
    }
    let mut out = Vec::new();
    let result = match compression {
        Compression::None => std::io::BufReader::new(file).read_to_end(&mut out),
        Compression::Gzip => flate2::read::MultiGzDecoder::new(file).read_to_end(&mut out),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(file).and_then(|mut d| d.read_to_end(&mut out))
        }
    };
    result.map_err(|e| {
        let what = match compression {
            Compression::None => format!("cannot read: {e}"),
            _ => format!("compressed stream is corrupt or truncated: {e}"),
        };
        file_error(path, what)
    })?;
    Ok(SourceBytes::Owned(out))
}

/// Cut JSON Lines into rows. The text is cut into pieces that end at a newline, and the
/// pieces are split (and checked for UTF-8) on every core, then numbered in order.
fn split_lines(bytes: SourceBytes) -> SourceText {
    split_lines_by(bytes, 8 << 20)
}

fn split_lines_by(bytes: SourceBytes, piece: usize) -> SourceText {
    use rayon::prelude::*;
    let mut bounds = vec![0];
    while let Some(&from) = bounds.last().filter(|&&b| b + piece < bytes.len()) {
        match memchr::memchr(b'\n', &bytes[from + piece..]) {
            Some(i) => bounds.push(from + piece + i + 1),
            None => break,
        }
    }
    bounds.push(bytes.len());
    let pieces: Vec<(Vec<RowSpan>, Vec<RowError>, usize)> = bounds
        .par_windows(2)
        .map(|w| split_piece(&bytes, w[0], w[1]))
        .collect();
    let mut rows = Vec::with_capacity(pieces.iter().map(|p| p.0.len()).sum());
    let mut broken = Vec::new();
    let mut lines_before = 0;
    for (piece_rows, piece_broken, lines) in pieces {
        rows.extend(piece_rows.into_iter().map(|mut r| {
            r.line += lines_before;
            r
        }));
        broken.extend(piece_broken.into_iter().map(|mut e| {
            e.line += lines_before;
            e
        }));
        lines_before += lines;
    }
    SourceText {
        kind: FileKind::Jsonl,
        bytes,
        rows,
        broken,
        unit: "line",
        same_as_file: false,
    }
}

/// The rows of `bytes[from..to]` (which ends at a newline or the end of the text), with
/// line numbers counted from 1 in the piece, and the number of lines it holds.
fn split_piece(bytes: &[u8], from: usize, to: usize) -> (Vec<RowSpan>, Vec<RowError>, usize) {
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    let mut start = from;
    let mut line = 0usize;
    while start < to || (start == to && to == bytes.len()) {
        line += 1;
        let end = memchr::memchr(b'\n', &bytes[start..to])
            .map(|i| start + i)
            .unwrap_or(to);
        let mut stop = end;
        if stop > start && bytes[stop - 1] == b'\r' {
            stop -= 1;
        }
        let slice = &bytes[start..stop];
        if !slice.iter().all(u8::is_ascii_whitespace) {
            match std::str::from_utf8(slice) {
                Ok(_) => rows.push(RowSpan {
                    line,
                    start,
                    end: stop,
                }),
                Err(e) => broken.push(utf8_error(line, slice, e)),
            }
        }
        if end == to {
            break;
        }
        start = end + 1;
    }
    (rows, broken, line)
}

fn utf8_error(line: usize, slice: &[u8], e: std::str::Utf8Error) -> RowError {
    let at = e.valid_up_to();
    let byte = slice.get(at).copied().unwrap_or(0);
    RowError::new(
        line,
        None,
        format!(
            "not valid UTF-8: byte 0x{byte:02x} at column {}; re-encode the file as UTF-8",
            at + 1
        ),
    )
}

fn split_array(path: &Path, bytes: SourceBytes) -> Result<SourceText, UserError> {
    if let Err(e) = std::str::from_utf8(&bytes) {
        let at = e.valid_up_to();
        let line = 1 + memchr::memchr_iter(b'\n', &bytes[..at]).count();
        let line_start = memchr::memrchr(b'\n', &bytes[..at])
            .map(|p| p + 1)
            .unwrap_or(0);
        let err = RowError::new(
            line,
            None,
            format!(
                "not valid UTF-8: byte 0x{:02x} at column {}; re-encode the file as UTF-8",
                bytes[at],
                at - line_start + 1
            ),
        );
        return Err(UserError::in_file(path, &err));
    }
    let text = std::str::from_utf8(&bytes).expect("checked above");
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(e) => {
            let msg = if e.is_eof() {
                format!("invalid JSON: {e} (the file looks truncated)")
            } else {
                format!("invalid JSON: {e}")
            };
            return Err(UserError::in_file(
                path,
                &RowError::new(e.line(), None, strip_serde_position(&msg)),
            ));
        }
    };
    let base = text.as_ptr() as usize;
    let mut rows = Vec::with_capacity(items.len());
    let mut counted_to = 0usize;
    let mut line = 1usize;
    for item in items {
        let start = item.get().as_ptr() as usize - base;
        line += memchr::memchr_iter(b'\n', &bytes[counted_to..start]).count();
        counted_to = start;
        rows.push(RowSpan {
            line,
            start,
            end: start + item.get().len(),
        });
    }
    Ok(SourceText {
        kind: FileKind::JsonArray,
        bytes,
        rows,
        broken: Vec::new(),
        unit: "line",
        same_as_file: false,
    })
}

/// serde_json appends "at line L column C"; we report the line ourselves.
pub fn strip_serde_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => {
            let rest = &msg[i..];
            let tail = rest.find(" (").map(|j| &rest[j..]).unwrap_or("");
            let col = rest
                .split("column ")
                .nth(1)
                .and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next())
                .unwrap_or("");
            if col.is_empty() {
                format!("{}{}", &msg[..i], tail)
            } else {
                format!("{} (column {}){}", &msg[..i], col, tail)
            }
        }
        None => msg.to_string(),
    }
}

fn csv_to_rows(path: &Path, bytes: &[u8]) -> Result<SourceText, UserError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let headers: Vec<String> = match reader.byte_headers() {
        Ok(h) => h
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect(),
        Err(e) => return Err(file_error(path, format!("cannot read CSV header: {e}"))),
    };
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(line);
                broken.push(RowError::new(
                    line,
                    None,
                    format!("malformed CSV record: {e}"),
                ));
                continue;
            }
        }
        let line = record.position().map(|p| p.line() as usize).unwrap_or(line);
        let mut obj = serde_json::Map::new();
        let mut bad = None;
        for (name, field) in headers.iter().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(s) => {
                    obj.insert(name.clone(), Value::String(s.to_string()));
                }
                Err(e) => {
                    let mut err = utf8_error(line, field, e);
                    err.field = Some(name.clone());
                    bad = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = bad {
            broken.push(err);
            continue;
        }
        let start = out.len();
        serde_json::to_writer(&mut out, &Value::Object(obj)).expect("in-memory write");
        rows.push(RowSpan {
            line,
            start,
            end: out.len(),
        });
    }
    if rows.is_empty() && broken.is_empty() {
        return Err(file_error(
            path,
            "file is empty: a CSV header but no records",
        ));
    }
    Ok(SourceText {
        kind: FileKind::Csv,
        bytes: SourceBytes::Owned(out),
        rows,
        broken,
        unit: "line",
        same_as_file: false,
    })
}

fn read_parquet(path: &Path) -> Result<SourceText, UserError> {
    let file = std::fs::File::open(path).map_err(|e| io_context(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| file_error(path, format!("cannot read Parquet: {e}")))?;
    if df.height() == 0 {
        return Err(file_error(path, "file is empty: no records found"));
    }
    let mut out = Vec::new();
    let mut rows = Vec::with_capacity(df.height());
    let columns = df.columns();
    let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
    for i in 0..df.height() {
        let mut obj = serde_json::Map::new();
        for (name, col) in names.iter().zip(columns.iter()) {
            let value = col.get(i).map(|av| any_to_json(&av)).unwrap_or(Value::Null);
            obj.insert(name.clone(), value);
        }
        let start = out.len();
        serde_json::to_writer(&mut out, &Value::Object(obj)).expect("in-memory write");
        rows.push(RowSpan {
            line: i + 1,
            start,
            end: out.len(),
        });
    }
    Ok(SourceText {
        kind: FileKind::Parquet,
        bytes: SourceBytes::Owned(out),
        rows,
        broken: Vec::new(),
        unit: "row",
        same_as_file: false,
    })
}

/// A polars value as JSON, recursing into lists and structs.
pub fn any_to_json(av: &AnyValue) -> Value {
    match av {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(*b),
        AnyValue::String(s) => Value::String((*s).to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(v) => Value::from(*v),
        AnyValue::Int16(v) => Value::from(*v),
        AnyValue::Int32(v) => Value::from(*v),
        AnyValue::Int64(v) => Value::from(*v),
        AnyValue::UInt8(v) => Value::from(*v),
        AnyValue::UInt16(v) => Value::from(*v),
        AnyValue::UInt32(v) => Value::from(*v),
        AnyValue::UInt64(v) => Value::from(*v),
        AnyValue::Float32(v) => serde_json::Number::from_f64(*v as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::Float64(v) => serde_json::Number::from_f64(*v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        AnyValue::List(series) => Value::Array(series.iter().map(|v| any_to_json(&v)).collect()),
        AnyValue::Struct(_, _, fields) => {
            let mut obj = serde_json::Map::new();
            for (field, value) in fields.iter().zip(av._iter_struct_av()) {
                obj.insert(field.name().to_string(), any_to_json(&value));
            }
            Value::Object(obj)
        }
        AnyValue::StructOwned(payload) => {
            let (values, fields) = payload.as_ref();
            let mut obj = serde_json::Map::new();
            for (field, value) in fields.iter().zip(values.iter()) {
                obj.insert(field.name().to_string(), any_to_json(value));
            }
            Value::Object(obj)
        }
        other => Value::String(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_cut_in_pieces_number_as_one_text() {
        let text =
            b"{\"a\":1}\r\n\n  \n{\"b\":2}\n\xff bad\n{\"c\":3}\n\n{\"d\":\"\xc3\xa9\"}\n{\"e\":5}";
        let whole = split_lines_by(SourceBytes::Owned(text.to_vec()), usize::MAX);
        let lines = |s: &SourceText| -> Vec<(usize, usize, usize)> {
            s.rows.iter().map(|r| (r.line, r.start, r.end)).collect()
        };
        assert_eq!(
            whole.rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 4, 6, 8, 9]
        );
        assert_eq!(whole.broken.len(), 1);
        assert_eq!(whole.broken[0].line, 5);
        for piece in 1..text.len() + 2 {
            let cut = split_lines_by(SourceBytes::Owned(text.to_vec()), piece);
            assert_eq!(lines(&cut), lines(&whole), "pieces of {piece}");
            assert_eq!(cut.broken.len(), 1);
            assert_eq!(cut.broken[0].line, 5, "pieces of {piece}");
        }
        // Ending with a newline changes nothing either.
        let mut ended = text.to_vec();
        ended.push(b'\n');
        for piece in [1, 3, 1000] {
            let cut = split_lines_by(SourceBytes::Owned(ended.clone()), piece);
            assert_eq!(lines(&cut), lines(&whole));
        }
    }
}
