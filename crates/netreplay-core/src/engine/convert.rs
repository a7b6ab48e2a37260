//! `convert`: MCL logs to MCAP and back, payload bytes and times kept
//! exactly.
//!
//! MCL → MCAP: one channel per (type, topic), schema name = type
//! (schemaless for raw data), encoding `msgpack`, log time = the elapsed
//! time in ns as logged (MCL has no absolute times). A metadata record
//! [`MCL_METADATA`] keeps the header's `created` and `revision` and says the
//! times are elapsed, so converting back gives the same log.
//!
//! MCAP → MCL: msgpack channels only (MCL payloads are msgpack); elapsed
//! time = log time − the first message's (or 0 for a file written from
//! MCL). One type: a `.log` file; otherwise a recording directory with one
//! file per type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::engine::merge::MergeReader;
use crate::engine::open::open_path;
use crate::format::detect::{detect_file, Format};
use crate::format::mcap::{
    self as mcap_format, McapOptions, McapWriteOptions, McapWriter, MSGPACK,
};
use crate::format::mcl::{
    format_created, ReadOptions, Recorder, RecorderOptions, RecorderStream, TimeOrigin, WriteFile,
    WriteOptions,
};
use crate::format::{OnError, RecordSource, TimeWindow};
use crate::{Error, Result};

/// The metadata record of an MCAP written from MCL.
pub const MCL_METADATA: &str = "netreplay.mcl";

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Chunking and compression of an MCAP output.
    pub mcap: McapWriteOptions,
    pub on_error: OnError,
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub messages: u64,
    pub files: Vec<PathBuf>,
    /// Malformed records skipped under [`OnError::Skip`].
    pub skipped: u64,
}

/// Convert `input` (a file, split-set prefix or directory) to `output`:
/// MCL to MCAP when `output` ends in `.mcap`, MCAP to MCL otherwise.
pub fn convert(input: &Path, output: &Path, options: &ConvertOptions) -> Result<ConvertSummary> {
    let input_mcap = input.is_file() && detect_file(input)? == Format::Mcap;
    let output_mcap = output.extension().is_some_and(|e| e == "mcap");
    match (input_mcap, output_mcap) {
        (false, true) => mcl_to_mcap(input, output, options),
        (true, false) => mcap_to_mcl(input, output, options),
        (true, true) => Err(Error::invalid(
            "output",
            format!(
                "'{}' is MCAP and so is '{}': convert goes between MCL and MCAP",
                input.display(),
                output.display()
            ),
        )),
        (false, false) => Err(Error::invalid(
            "output",
            format!(
                "'{}' is an MCL log: give an output ending in .mcap",
                input.display()
            ),
        )),
    }
}

fn mcl_to_mcap(input: &Path, output: &Path, options: &ConvertOptions) -> Result<ConvertSummary> {
    let mut reader = open_path(
        input,
        &ReadOptions {
            window: TimeWindow::default(),
            include_raw: true,
            on_error: options.on_error,
        },
    )?;
    let mut writer = McapWriter::create(output, &options.mcap)?;
    let written = (|| {
        let header = reader.header().cloned();
        let mut metadata = BTreeMap::from([("time_base_ns".to_string(), "0".to_string())]);
        if let Some(h) = header {
            metadata.extend(h.created.map(|c| ("created".to_string(), c)));
            metadata.extend(h.revision.map(|r| ("revision".to_string(), r)));
        }
        writer.write_metadata(MCL_METADATA, metadata)?;
        let types: Vec<Option<String>> = reader
            .streams()
            .iter()
            .map(|s| s.message_type.clone())
            .collect();
        // Ties go by stream order in MCL, by channel id in MCAP: channels
        // are added in stream order (a first pass finds their topics).
        let mut channels: Vec<(u32, std::sync::Arc<str>)> = Vec::new();
        while let Some(record) = reader.next_record()? {
            if !channels
                .iter()
                .any(|(s, t)| *s == record.stream && *t == record.topic)
            {
                channels.push((record.stream, record.topic.clone()));
            }
        }
        channels.sort_by_key(|(stream, _)| *stream);
        for (stream, topic) in &channels {
            let message_type = types.get(*stream as usize).cloned().flatten();
            writer.channel(message_type.as_deref(), topic, MSGPACK)?;
        }
        reader.reset()?;
        while let Some(record) = reader.next_record()? {
            let log_time = u64::try_from(record.time_ns).map_err(|_| {
                Error::invalid(
                    "input",
                    format!(
                        "a record at {} s: MCAP log times cannot be negative",
                        record.time_ns as f64 / 1e9
                    ),
                )
            })?;
            let message_type = types.get(record.stream as usize).cloned().flatten();
            writer.write(
                message_type.as_deref(),
                &record.topic,
                MSGPACK,
                log_time,
                &record.payload,
            )?;
        }
        Ok(())
    })();
    finish_mcap(writer, written, reader.skipped())
}

/// Close `writer` after `written`; a failed conversion leaves no file.
fn finish_mcap(writer: McapWriter, written: Result<()>, skipped: u64) -> Result<ConvertSummary> {
    let path = writer.path().to_path_buf();
    let messages = writer.messages();
    let closed = written.and_then(|()| writer.close());
    match closed {
        Ok(path) => Ok(ConvertSummary {
            messages,
            files: vec![path],
            skipped,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Where MCL records go: one file, or a recording directory.
enum MclOutput {
    File(WriteFile),
    Directory(Recorder),
}

fn mcap_to_mcl(input: &Path, output: &Path, options: &ConvertOptions) -> Result<ConvertSummary> {
    let mut files = mcap_format::open_files(
        &[input.to_path_buf()],
        &McapOptions {
            on_error: options.on_error,
            ..McapOptions::default()
        },
    )?;
    let file = &mut files[0];
    let metadata = file.metadata(MCL_METADATA).cloned().unwrap_or_default();
    if let Some(base) = metadata.get("time_base_ns") {
        let base = base.parse::<u64>().map_err(|_| Error::Layout {
            path: input.to_path_buf(),
            reason: format!("its {MCL_METADATA} metadata has time_base_ns '{base}', not a number"),
        })?;
        file.set_base(base)?;
    }
    let streams = file.streams().to_vec();
    for s in &streams {
        let encoding = s.encoding.as_deref().unwrap_or(MSGPACK);
        if encoding != MSGPACK {
            return Err(Error::invalid(
                "input",
                format!(
                    "'{}' has a channel of type {} encoded '{encoding}': MCL payloads are msgpack, \
                     so convert takes msgpack channels only",
                    input.display(),
                    s.message_type.as_deref().unwrap_or("None"),
                ),
            ));
        }
    }
    // One MCL stream per type, in the order types first appear.
    let mut types: Vec<Option<String>> = Vec::new();
    let stream_of: Vec<usize> = streams
        .iter()
        .map(|s| match types.iter().position(|t| *t == s.message_type) {
            Some(i) => i,
            None => {
                types.push(s.message_type.clone());
                types.len() - 1
            }
        })
        .collect();
    let base_us = (streams.first().map_or(0, |s| s.time_base_ns) / 1000).min(i64::MAX as u64);
    let created = metadata
        .get("created")
        .cloned()
        .unwrap_or_else(|| format_created(base_us as i64));
    let revision = metadata.get("revision").cloned().unwrap_or_default();
    let single = output.extension().is_some_and(|e| e == "log");
    let mut out = if single {
        if types.len() > 1 {
            return Err(Error::invalid(
                "output",
                format!(
                    "'{}' holds {} message types; an MCL file holds one: give a directory",
                    input.display(),
                    types.len()
                ),
            ));
        }
        MclOutput::File(WriteFile::create(
            output.with_extension(""),
            WriteOptions {
                message_type: types.first().cloned().flatten(),
                revision,
                created,
                ..WriteOptions::default()
            },
        )?)
    } else {
        let recorder_streams: Vec<RecorderStream> = types
            .iter()
            .map(|t| RecorderStream {
                name: t.clone().unwrap_or_else(|| "None".into()),
                message_type: t.clone(),
            })
            .collect();
        MclOutput::Directory(Recorder::create_at(
            RecorderOptions {
                directory: Some(output.to_path_buf()),
                revision,
                created: Some(created),
                ..RecorderOptions::default()
            },
            &recorder_streams,
            TimeOrigin::now(),
        )?)
    };
    let mut reader = MergeReader::new(
        files
            .into_iter()
            .map(|f| Box::new(f) as Box<dyn RecordSource>)
            .collect(),
        TimeWindow::default(),
    );
    let mut messages = 0u64;
    let written = (|| {
        while let Some(mut record) = reader.next_record()? {
            record.stream = stream_of[record.stream as usize] as u32;
            match &mut out {
                MclOutput::File(w) => w.write_record(&record)?,
                MclOutput::Directory(r) => r.write_record(&record)?,
            }
            messages += 1;
        }
        Ok(())
    })();
    let closed = match out {
        MclOutput::File(w) => w.close(),
        MclOutput::Directory(r) => r.close(),
    };
    written?;
    Ok(ConvertSummary {
        messages,
        files: closed?,
        skipped: reader.skipped(),
    })
}
