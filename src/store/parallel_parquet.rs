//! A Parquet writer that compresses on every core.
//!
//! polars' `BatchedWriter` compresses pages lazily, on the thread that writes them: a
//! 1M-row snapshot spent 3.2 s compressing on one core while the other waited. Here
//! each row group is encoded and compressed by [`RowGroupEncoder::encode`], which any
//! number of threads may call at once, and only finished pages pass through the
//! [`ParquetSink`], in order, on a thread of its own if the caller likes. The file is an
//! ordinary Parquet file written by polars' own `FileWriter`.

use std::io::Write;

use polars::prelude::*;
use polars_io::parquet::write::{BatchedWriter, get_encodings};
use polars_parquet::write::{
    CompressedPage, CompressionOptions, Encoding, ParquetType, StatisticsOptions, Version,
    WriteOptions, array_to_columns, compress, to_parquet_schema,
};

/// Turns frames into compressed row groups; shared by any number of threads.
pub struct RowGroupEncoder {
    fields: Vec<ParquetType>,
    encodings: Vec<Vec<Encoding>>,
    /// One per column: plain columns carry no min/max statistics.
    options: Vec<WriteOptions>,
}

/// Writes compressed row groups in the order given, then the footer.
pub struct ParquetSink<W: Write> {
    writer: BatchedWriter<W>,
}

/// One row group, compressed and ready to write.
pub struct EncodedGroup {
    rows: u64,
    columns: Vec<Vec<CompressedPage>>,
}

/// The encoder and the sink for one Parquet file of frames with `schema`. Columns
/// named in `plain` are written without trying a dictionary first, and without min/max
/// statistics: for long texts that rarely repeat, polars' cardinality estimate and a
/// string comparison per row only cost time, and no reader skips row groups by the
/// smallest instruction text.
pub fn parallel_parquet<W: Write>(
    sink: W,
    schema: &Schema,
    compression: ParquetCompression,
    plain: &[&str],
) -> PolarsResult<(RowGroupEncoder, ParquetSink<W>)> {
    let writer = ParquetWriter::new(sink)
        .with_compression(compression)
        .batched(schema)?;
    // The same schema, types and encodings `batched` derived for its FileWriter.
    let arrow = schema.to_arrow(CompatLevel::newest());
    let fields = to_parquet_schema(&arrow)?.fields().to_vec();
    let encodings = get_encodings(&arrow)
        .iter()
        .zip(schema.iter_names())
        .map(|(encoding, name)| match encoding.as_slice() {
            [_] if plain.contains(&name.as_str()) => vec![Encoding::Plain],
            _ => encoding.clone(),
        })
        .collect();
    let options = schema
        .iter_names()
        .map(|name| {
            let mut statistics = StatisticsOptions::default();
            if plain.contains(&name.as_str()) {
                statistics.min_value = false;
                statistics.max_value = false;
            }
            WriteOptions {
                statistics,
                version: Version::V1,
                compression: CompressionOptions::from(compression),
                data_page_size: None,
            }
        })
        .collect();
    Ok((
        RowGroupEncoder {
            fields,
            encodings,
            options,
        },
        ParquetSink { writer },
    ))
}

impl RowGroupEncoder {
    /// Encode and compress `frame`, one row group per chunk. Safe to call from many
    /// threads at once; [`ParquetSink::write`] writes the groups in the caller's order.
    pub fn encode(&self, frame: &DataFrame) -> PolarsResult<Vec<EncodedGroup>> {
        let mut groups = Vec::new();
        for batch in frame.iter_chunks(CompatLevel::newest(), false) {
            if batch.is_empty() {
                continue;
            }
            let mut columns = Vec::new();
            for (((array, field), encoding), options) in batch
                .columns()
                .iter()
                .zip(&self.fields)
                .zip(&self.encodings)
                .zip(&self.options)
            {
                // A nested column has one entry per leaf.
                for leaf in array_to_columns(array, field.clone(), *options, encoding)? {
                    let pages = leaf
                        .map(|page| Ok(compress(page?, Vec::new(), options.compression)?))
                        .collect::<PolarsResult<Vec<_>>>()?;
                    columns.push(pages);
                }
            }
            groups.push(EncodedGroup {
                rows: batch.len() as u64,
                columns,
            });
        }
        Ok(groups)
    }
}

impl<W: Write> ParquetSink<W> {
    pub fn write(&mut self, group: &EncodedGroup) -> PolarsResult<()> {
        self.writer.write_row_group(group.rows, &group.columns)
    }

    pub fn finish(self) -> PolarsResult<u64> {
        self.writer.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_compressed_on_other_threads_read_back_as_the_frame_written() {
        let part = |from: usize| {
            let n = 1000;
            let text: Vec<Option<String>> = (from..from + n)
                .map(|i| (i % 7 != 0).then(|| format!("row {i} ") + &"x".repeat(i % 50)))
                .collect();
            let number: Vec<u32> = (from..from + n).map(|i| i as u32).collect();
            let turns: Vec<Series> = (from..from + n)
                .map(|i| Series::new("".into(), vec![format!("turn {i}"); i % 3]))
                .collect();
            df!("text" => text, "number" => number, "turns" => turns).unwrap()
        };
        let parts: Vec<DataFrame> = (0..4).map(|k| part(k * 1000)).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let (encoder, mut writer) = parallel_parquet(
            &file,
            &parts[0].schema(),
            ParquetCompression::Lz4Raw,
            &["text"],
        )
        .unwrap();
        // Encoded in reverse order on two threads, written in frame order.
        let encoded: Vec<Vec<EncodedGroup>> = std::thread::scope(|s| {
            let w = &encoder;
            let handles: Vec<_> = parts
                .iter()
                .rev()
                .map(|p| s.spawn(move || w.encode(p).unwrap()))
                .collect();
            let mut out: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            out.reverse();
            out
        });
        for group in encoded.iter().flatten() {
            writer.write(group).unwrap();
        }
        writer.finish().unwrap();
        let back = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        let mut whole = parts[0].clone();
        for p in &parts[1..] {
            whole.vstack_mut(p).unwrap();
        }
        assert_eq!(back.height(), 4000);
        assert!(back.equals_missing(&whole));
        // The plain column has null counts but no min/max; the others keep theirs.
        let meta =
            polars_parquet::read::read_metadata(&mut std::fs::File::open(&path).unwrap()).unwrap();
        let stats = |name: &str| {
            let column = meta.row_groups[0]
                .columns_under_root_iter(name)
                .unwrap()
                .next()
                .unwrap();
            column.statistics(&meta.footer_buf).unwrap().unwrap()
        };
        let text = stats("text");
        let text = text.expect_as_binary();
        assert_eq!(
            (text.min_value.as_ref(), text.max_value.as_ref()),
            (None, None)
        );
        assert!(text.null_count.unwrap() > 0);
        let number = stats("number");
        let number = number.expect_as_int32();
        assert_eq!((number.min_value, number.max_value), (Some(0), Some(999)));
    }
}
