//! Writing the files GitLab expects, straight to disk (memory does not grow with their size):
//! a zip archive (`archive`, `lsif`...), a gzip stream with one member per report file (`junit`,
//! `dotenv`, `cobertura`...: GitLab reads every member) and a raw copy of a single file.

use crate::core::error::{Error, Result};
use flate2::{Compression, GzBuilder};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// What a collected path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    /// A symbolic link (checked to stay inside the working directory), with its target as read.
    Symlink(String),
}

/// One collected path (relative to the working directory, `/`-separated).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    pub modified: Option<SystemTime>,
}

/// How hard to compress: the job variable `ARTIFACT_COMPRESSION_LEVEL` of the official runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// `fastest`: stored, not compressed.
    Store,
    /// `fast`
    Fast,
    /// `default` (or unset)
    Default,
    /// `slow`
    Slow,
    /// `slowest`
    Slowest,
}

impl Level {
    pub(crate) fn from_variable(value: Option<&str>) -> Level {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("fastest") => Level::Store,
            Some("fast") => Level::Fast,
            Some("slow") => Level::Slow,
            Some("slowest") => Level::Slowest,
            _ => Level::Default,
        }
    }

    /// The deflate level. `default` is 2, not zlib's 6: with this deflate implementation level 2
    /// is about ten times faster than 6 for a few percent more bytes (measured on build output),
    /// which is what the official runner's default (fastzip's level 5 with a faster deflate)
    /// trades too.
    pub(crate) fn deflate(self) -> u32 {
        match self {
            Level::Store => 0,
            Level::Fast => 1,
            Level::Default => 2,
            Level::Slow => 6,
            Level::Slowest => 9,
        }
    }
}

const BUFFER: usize = 256 * 1024;

fn io_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::io(format!("{what}: {e}"))
}

/// A zip timestamp (UTC; the format has no time zone) for `t`, or the format's default for
/// times it cannot hold (before 1980).
fn zip_time(t: Option<SystemTime>) -> DateTime {
    let Some(secs) = t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs()) else {
        return DateTime::default();
    };
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let Ok(year) = u16::try_from(year) else { return DateTime::default() };
    DateTime::from_date_and_time(year, month, day, (rem / 3600) as u8, (rem % 3600 / 60) as u8, (rem % 60) as u8)
        .unwrap_or_default()
}

/// Writes `entries` (sorted, as the official runner) from `workdir` into a new zip at `out`:
/// directories as `name/` entries, files deflated, symbolic links as links (their target as
/// content, Unix mode `S_IFLNK`), permissions and modification times kept.
pub(crate) fn write_zip(workdir: &Path, entries: &BTreeMap<String, Entry>, level: Level, out: &Path) -> Result<()> {
    let file = File::create(out).map_err(|e| io_err(out.display(), e))?;
    let mut zip = ZipWriter::new(BufWriter::with_capacity(BUFFER, file));
    let zip_err = |name: &str, e: zip::result::ZipError| match e {
        zip::result::ZipError::Io(e) => io_err(format!("writing {} (entry {name})", out.display()), e),
        other => Error::io(format!("writing {} (entry {name}): {other}", out.display())),
    };
    for (name, entry) in entries {
        let options = SimpleFileOptions::default()
            .last_modified_time(zip_time(entry.modified))
            .unix_permissions(entry.mode & 0o7777);
        match &entry.kind {
            Kind::Dir => zip.add_directory(format!("{name}/"), options).map_err(|e| zip_err(name, e))?,
            Kind::Symlink(target) => zip.add_symlink(name, target, options).map_err(|e| zip_err(name, e))?,
            Kind::File => {
                let path = workdir.join(name);
                let mut src = File::open(&path).map_err(|e| io_err(path.display(), e))?;
                let len = src.metadata().map_err(|e| io_err(path.display(), e))?.len();
                let options = match level {
                    Level::Store => options.compression_method(CompressionMethod::Stored),
                    _ => options
                        .compression_method(CompressionMethod::Deflated)
                        .compression_level(Some(i64::from(level.deflate()))),
                };
                let options = options.large_file(len >= u64::from(u32::MAX));
                zip.start_file(name, options).map_err(|e| zip_err(name, e))?;
                copy(&mut src, &mut zip, &path, out)?;
            }
        }
    }
    let buffered = zip.finish().map_err(|e| zip_err("central directory", e))?;
    finish(buffered, out)
}

/// Writes one gzip member per file of `files` (sorted), each with the file's base name as its
/// name, its path as comment and its modification time, as the official runner's gzip
/// archiver; GitLab reads all members of a report.
pub(crate) fn write_gzip(workdir: &Path, files: &[(&String, &Entry)], level: Level, out: &Path) -> Result<()> {
    let file = File::create(out).map_err(|e| io_err(out.display(), e))?;
    let mut w = BufWriter::with_capacity(BUFFER, file);
    for (name, entry) in files {
        let path = workdir.join(name);
        let mut src = File::open(&path).map_err(|e| io_err(path.display(), e))?;
        let base = name.rsplit('/').next().unwrap_or(name);
        let mtime = entry
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| u32::try_from(d.as_secs()).ok())
            .unwrap_or(0);
        let mut gz = GzBuilder::new()
            .filename(base.as_bytes())
            .comment(name.as_bytes())
            .mtime(mtime)
            .write(&mut w, Compression::new(level.deflate()));
        copy(&mut src, &mut gz, &path, out)?;
        gz.finish().map_err(|e| io_err(format!("writing {}", out.display()), e))?;
    }
    finish(w, out)
}

/// Copies the single file `name` of `workdir` to `out`.
pub(crate) fn write_raw(workdir: &Path, name: &str, out: &Path) -> Result<()> {
    let path = workdir.join(name);
    std::fs::copy(&path, out)
        .map(|_| ())
        .map_err(|e| io_err(format!("copying {} to {}", path.display(), out.display()), e))
}

fn copy(src: &mut File, dst: &mut impl Write, path: &Path, out: &Path) -> Result<()> {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path.display(), e)),
        };
        dst.write_all(&buf[..n]).map_err(|e| io_err(format!("writing {}", out.display()), e))?;
    }
}

fn finish(w: BufWriter<File>, out: &Path) -> Result<()> {
    let file = w.into_inner().map_err(|e| io_err(format!("writing {}", out.display()), e.error()))?;
    file.sync_all().map_err(|e| io_err(format!("writing {}", out.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn compression_levels_follow_the_official_variable() {
        assert_eq!(Level::from_variable(None), Level::Default);
        assert_eq!(Level::from_variable(Some("fastest")), Level::Store);
        assert_eq!(Level::from_variable(Some(" Fast ")), Level::Fast);
        assert_eq!(Level::from_variable(Some("slowest")).deflate(), 9);
        assert_eq!(Level::from_variable(Some("bogus")), Level::Default);
    }

    #[test]
    fn zip_times_are_civil_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14 22:13:20 UTC
        let d = zip_time(Some(t));
        assert_eq!((d.year(), d.month(), d.day()), (2023, 11, 14));
        assert_eq!((d.hour(), d.minute(), d.second()), (22, 13, 20));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29 00:00:00
        let d = zip_time(Some(leap));
        assert_eq!((d.year(), d.month(), d.day()), (2000, 2, 29));
        assert_eq!(zip_time(Some(UNIX_EPOCH)), DateTime::default());
        assert_eq!(zip_time(None), DateTime::default());
    }
}
