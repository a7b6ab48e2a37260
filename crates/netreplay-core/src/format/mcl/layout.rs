//! Where a stream's files are: split-set part names (`<Prefix>_NNN.log`,
//! read and written), the parts of a file or split set, and the streams of
//! a recording directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::format::mcl::reader::{MclStream, ReadOptions};
use crate::{Error, Result};

/// `Prefix_NNN.log` → (`Prefix`, NNN).
fn split_part(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".log")?;
    let (prefix, number) = stem.rsplit_once('_')?;
    if number.len() < 3 || !number.bytes().all(|b| b.is_ascii_digit()) || prefix.is_empty() {
        return None;
    }
    Some((prefix, number.parse().ok()?))
}

/// The file of part `number` of the stream `prefix` with extension `ext`:
/// `<prefix>_NNN.<ext>` (at least three digits, so `_1000` after `_999`)
/// for a split set, `<prefix>.<ext>` for a single file (`number` None).
pub(super) fn part_path(prefix: &Path, number: Option<u64>, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    match number {
        Some(number) => name.push(format!("_{number:03}.{ext}")),
        None => name.push(format!(".{ext}")),
    }
    PathBuf::from(name)
}

/// The parts of the split set `prefix_NNN.log`, in number order.
fn find_split_set(prefix: &Path) -> Result<Vec<PathBuf>> {
    let dir = match prefix.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let want = prefix.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(prefix, &e))?;
    let mut parts = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some((p, n)) = name.to_str().and_then(split_part) {
            if p == want {
                parts.push((n, entry.path()));
            }
        }
    }
    parts.sort();
    Ok(parts.into_iter().map(|(_, p)| p).collect())
}

/// The parts `ReadFile` reads: the file itself, or the split set
/// `<path>_NNN.log` when `path` is a prefix.
pub fn file_parts(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(if path.is_file() {
        vec![path.to_path_buf()]
    } else if path.is_dir() {
        return Err(Error::Io {
            path: path.to_path_buf(),
            message: "is a directory (use ReadDirectory)".into(),
        });
    } else {
        let parts = find_split_set(path).unwrap_or_default();
        if parts.is_empty() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                message: "no such file, nor a split set <path>_000.log, ...".into(),
            });
        }
        parts
    })
}

/// The streams of a recording directory `ReadDirectory` reads, in name
/// order (raw streams only with `include_raw`); their headers must agree
/// on `created`.
pub fn directory_streams(dir: &Path, options: &ReadOptions) -> Result<Vec<MclStream>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, &e))?;
    // Key: the stream's name (split prefix or file name); BTreeMap keeps name order.
    let mut sets: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, &e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".log") || !entry.path().is_file() {
            continue;
        }
        match split_part(name) {
            Some((prefix, n)) => sets
                .entry(prefix.to_string())
                .or_default()
                .push((n, entry.path())),
            None => sets
                .entry(name.trim_end_matches(".log").to_string())
                .or_default()
                .push((0, entry.path())),
        }
    }
    if sets.is_empty() {
        return Err(Error::Layout {
            path: dir.to_path_buf(),
            reason: "no MCL log files (*.log) in this directory".into(),
        });
    }
    let mut streams = Vec::new();
    let mut created: Option<(String, PathBuf)> = None;
    for (_, mut parts) in sets {
        parts.sort();
        let parts: Vec<PathBuf> = parts.into_iter().map(|(_, p)| p).collect();
        let stream = MclStream::open(&parts, options.on_error)?;
        let Some(header) = stream.header() else {
            return Err(Error::Layout {
                path: parts[0].clone(),
                reason: "has no MCL header; every log in a directory needs one".into(),
            });
        };
        let this_created = header.created.clone().unwrap_or_default();
        match &created {
            None => created = Some((this_created, parts[0].clone())),
            Some((first, first_path)) if *first != this_created => {
                return Err(Error::Layout {
                    path: parts[0].clone(),
                    reason: format!(
                        "created '{}' differs from '{}' in {}: the files are not one recording",
                        this_created,
                        first,
                        first_path.display()
                    ),
                });
            }
            _ => {}
        }
        if header.raw && !options.include_raw {
            continue;
        }
        streams.push(stream);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_part("Cam_000.log"), Some(("Cam", 0)));
        assert_eq!(split_part("A_b_012.log"), Some(("A_b", 12)));
        assert_eq!(split_part("Cam_01.log"), None);
        assert_eq!(split_part("Cam.log"), None);
        assert_eq!(split_part("Cam_000.tmp"), None);
    }

    #[test]
    fn written_part_names_parse_back() {
        for number in [0, 1, 12, 999, 1000, 123_456] {
            let path = part_path(Path::new("dir/Cam_x"), Some(number), "log");
            let name = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(split_part(name), Some(("Cam_x", number)), "{name}");
            assert_eq!(path.parent(), Some(Path::new("dir")));
        }
        assert_eq!(
            part_path(Path::new("d/Cam"), Some(7), "tmp"),
            Path::new("d/Cam_007.tmp")
        );
        let single = part_path(Path::new("d/Cam"), None, "log");
        assert_eq!(single, Path::new("d/Cam.log"));
        assert_eq!(split_part("Cam.log"), None);
    }
}
