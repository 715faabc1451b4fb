//! Extracting a downloaded artifacts archive without ever writing outside the destination.
//!
//! Every entry is checked before anything is written; the whole archive is refused
//! (`InvalidArgument`) when one entry would escape: a name that is absolute or has a `..`
//! component, an entry below a symbolic-link entry of the same archive, or a symbolic link whose
//! target is absolute, has `..` anywhere but at its start, or climbs above the destination.
//! Links that stay inside (`lib.so -> lib.so.1`, `current -> ../releases/3`) are created, after
//! all files, so no later entry can be written through them. While writing, every directory on
//! an entry's path must be a real directory (a symbolic link already present in the destination
//! is refused, not followed), and a file replaces an existing file or link instead of writing
//! through it. Special files (devices, fifos) are skipped, as the official runner does.

use crate::core::diag;
use crate::core::error::{Error, ErrorKind, Result};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use zip::result::ZipError;
use zip::ZipArchive;

const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
/// A link target longer than this is not a path.
const MAX_LINK_TARGET: u64 = 4096;

#[derive(Debug, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File,
    Symlink(String),
    Special,
}

struct Plan {
    index: usize,
    /// Cleaned components of the name.
    parts: Vec<String>,
    kind: EntryKind,
    mode: Option<u32>,
}

fn zip_error(zip_path: &Path, e: ZipError) -> Error {
    match e {
        ZipError::Io(e)
            if e.kind() != std::io::ErrorKind::InvalidData && e.kind() != std::io::ErrorKind::UnexpectedEof =>
        {
            Error::io(format!("{}: {e}", zip_path.display()))
        }
        other => Error::parse(format!("{} is not a valid zip archive: {other}", zip_path.display())),
    }
}

fn refuse(zip_path: &Path, name: &str, why: &str) -> Error {
    Error::invalid(format!("{}: entry {name:?} {why}; nothing was extracted", zip_path.display()))
}

/// The components of an entry name; None when it is absolute or climbs (`..`).
fn entry_parts(name: &str) -> Option<Vec<String>> {
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\0') {
        return None;
    }
    // A Windows drive ("C:...") is absolute there; refuse it everywhere.
    if name.len() >= 2 && name.as_bytes()[1] == b':' && name.as_bytes()[0].is_ascii_alphabetic() {
        return None;
    }
    let mut parts = Vec::new();
    for c in name.split(['/', '\\']) {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c.to_string()),
        }
    }
    Some(parts)
}

/// Whether a link at `parts` with `target` stays inside the destination: relative, `..` only as
/// leading components and no more of them than the link's directory is deep.
fn link_stays_inside(parts: &[String], target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.starts_with('\\') || target.contains('\0') {
        return false;
    }
    let depth = parts.len().saturating_sub(1);
    let mut ups = 0;
    let mut seen_name = false;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." if !seen_name => ups += 1,
            ".." => return false,
            _ => seen_name = true,
        }
    }
    ups <= depth
}

/// Extracts the zip at `zip_path` into `dest_dir` (created when missing). Returns the number of
/// entries written.
///
/// Errors: `InvalidArgument` for an escaping entry (see the module documentation: nothing is
/// written then) or a destination path that holds a symbolic link or a file where a directory
/// is needed; `Parse` for a corrupt or unsupported archive (entries before the damaged one may
/// have been written); `Io` for files that cannot be read or written.
pub fn extract(zip_path: &Path, dest_dir: &Path) -> Result<usize> {
    let file = File::open(zip_path).map_err(|e| Error::io(format!("{}: {e}", zip_path.display())))?;
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(|e| zip_error(zip_path, e))?;

    // 1. Check every entry before writing anything.
    let mut plans = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| zip_error(zip_path, e))?;
        let name = entry.name().to_string();
        let parts =
            entry_parts(&name).ok_or_else(|| refuse(zip_path, &name, "is outside the destination directory"))?;
        let mode = entry.unix_mode();
        let kind = match mode.map(|m| m & S_IFMT) {
            Some(S_IFLNK) => {
                let mut target = String::new();
                entry
                    .by_ref()
                    .take(MAX_LINK_TARGET + 1)
                    .read_to_string(&mut target)
                    .map_err(|e| Error::parse(format!("{}: entry {name:?}: {e}", zip_path.display())))?;
                if parts.is_empty() || !link_stays_inside(&parts, &target) {
                    return Err(refuse(
                        zip_path,
                        &name,
                        &format!("is a symbolic link to {target:?}, which may point outside the destination directory"),
                    ));
                }
                EntryKind::Symlink(target)
            }
            _ if entry.is_dir() => EntryKind::Dir,
            Some(S_IFDIR) => EntryKind::Dir,
            None | Some(S_IFREG) | Some(0) => EntryKind::File,
            Some(_) => EntryKind::Special,
        };
        if parts.is_empty() && kind != EntryKind::Dir {
            return Err(refuse(zip_path, &name, "has no file name"));
        }
        plans.push(Plan { index, parts, kind, mode });
    }
    let links: HashSet<&[String]> =
        plans.iter().filter(|p| matches!(p.kind, EntryKind::Symlink(_))).map(|p| p.parts.as_slice()).collect();
    for plan in &plans {
        if (1..plan.parts.len()).any(|n| links.contains(&plan.parts[..n])) {
            return Err(refuse(zip_path, &plan.parts.join("/"), "lies below a symbolic link of the archive"));
        }
    }

    // 2. Write directories and files in archive order, links last.
    fs::create_dir_all(dest_dir).map_err(|e| Error::io(format!("{}: {e}", dest_dir.display())))?;
    let mut written = 0;
    for plan in plans.iter().filter(|p| !matches!(p.kind, EntryKind::Symlink(_))) {
        match plan.kind {
            EntryKind::Dir => {
                let dir = ensure_dirs(dest_dir, &plan.parts)?;
                set_mode(&dir, plan.mode.map(|m| (m & 0o777) | 0o700));
            }
            EntryKind::File => {
                let parent = ensure_dirs(dest_dir, &plan.parts[..plan.parts.len() - 1])?;
                let path = parent.join(&plan.parts[plan.parts.len() - 1]);
                clear_for_file(&path)?;
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| Error::io(format!("{}: {e}", path.display())))?;
                let mut entry = archive.by_index(plan.index).map_err(|e| zip_error(zip_path, e))?;
                copy_entry(&mut entry, &mut out, zip_path, &path)?;
                set_mode(&path, plan.mode.map(|m| m & 0o777).filter(|m| *m != 0));
            }
            EntryKind::Special => {
                diag::warn(&format!("{}: entry {:?} is not a file; skipped", zip_path.display(), plan.parts.join("/")));
                continue;
            }
            EntryKind::Symlink(_) => unreachable!("filtered out"),
        }
        written += 1;
    }
    for plan in &plans {
        if let EntryKind::Symlink(target) = &plan.kind {
            let parent = ensure_dirs(dest_dir, &plan.parts[..plan.parts.len() - 1])?;
            let path = parent.join(&plan.parts[plan.parts.len() - 1]);
            clear_for_file(&path)?;
            make_symlink(target, &path)?;
            written += 1;
        }
    }
    Ok(written)
}

/// Makes `dest/parts...` a chain of real directories (creating what is missing) and returns it.
/// A symbolic link or a file on the way is refused: nothing is ever written through a link.
fn ensure_dirs(dest: &Path, parts: &[String]) -> Result<PathBuf> {
    let mut path = dest.to_path_buf();
    for part in parts {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::invalid(format!("{} is a symbolic link; not extracting through it", path.display())))
            }
            Ok(_) => {
                return Err(Error::new(ErrorKind::Io, format!("{} exists and is not a directory", path.display())))
            }
            Err(_) => match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() && !is_link(&path) => {}
                Err(e) => return Err(Error::io(format!("{}: {e}", path.display()))),
            },
        }
    }
    Ok(path)
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Removes a file or link at `path` (never what a link points to); a directory is an error.
fn clear_for_file(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::io(format!("{} exists and is a directory", path.display()))),
        Ok(_) => fs::remove_file(path).map_err(|e| Error::io(format!("{}: {e}", path.display()))),
        Err(_) => Ok(()),
    }
}

fn copy_entry(entry: &mut impl Read, out: &mut File, zip_path: &Path, path: &Path) -> Result<()> {
    let mut w = BufWriter::with_capacity(256 * 1024, out);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Decompression or checksum failures: the archive is damaged.
            Err(e) => {
                return Err(Error::parse(format!(
                    "{}: entry for {} is damaged: {e}",
                    zip_path.display(),
                    path.display()
                )))
            }
        };
        w.write_all(&buf[..n]).map_err(|e| Error::io(format!("{}: {e}", path.display())))?;
    }
    w.flush().map_err(|e| Error::io(format!("{}: {e}", path.display())))
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(mode) = mode {
        if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
            diag::warn(&format!("{}: cannot set permissions: {e}", path.display()));
        }
    }
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: Option<u32>) {}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, path).map_err(|e| Error::io(format!("{}: {e}", path.display())))
}

#[cfg(not(unix))]
fn make_symlink(target: &str, path: &Path) -> Result<()> {
    Err(Error::invalid(format!("{}: symbolic links (to {target:?}) are not supported here", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> Vec<String> {
        entry_parts(s).unwrap()
    }

    #[test]
    fn entry_names_must_stay_inside() {
        assert_eq!(parts("a/b.txt"), vec!["a", "b.txt"]);
        assert_eq!(parts("./a//b/"), vec!["a", "b"]);
        for bad in ["../x", "a/../../x", "a/../b", "/etc/passwd", "\\x", "C:/x", "a\\..\\..\\x"] {
            assert_eq!(entry_parts(bad), None, "{bad}");
        }
    }

    #[test]
    fn link_targets_must_stay_inside() {
        assert!(link_stays_inside(&parts("lib/libx.so"), "libx.so.1"));
        assert!(link_stays_inside(&parts("a/b/current"), "../../releases/3"));
        assert!(link_stays_inside(&parts("self"), "."));
        assert!(!link_stays_inside(&parts("a/up"), "../.."));
        assert!(!link_stays_inside(&parts("x"), "../x"));
        assert!(!link_stays_inside(&parts("x"), "/etc/passwd"));
        assert!(!link_stays_inside(&parts("a/x"), "b/../../.."));
        assert!(!link_stays_inside(&parts("a/x"), "q/.."));
        assert!(!link_stays_inside(&parts("a/x"), ""));
    }
}
