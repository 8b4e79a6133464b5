//! Finding trace files: folders (walked recursively), single files, or glob patterns.

use std::path::{Path, PathBuf};

/// A trace file and the family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TraceFile {
    /// The family: the first folder under the root it was found in (or its parent folder).
    pub family: String,
    /// Path relative to that root, for reports.
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// Why traces could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// A folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A pattern is not a valid glob.
    #[error("bad glob pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        message: String,
    },
}

/// Files that sit next to traces but are not traces.
fn is_trace_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !(name.starts_with('.')
        || name.starts_with("LICENSE")
        || name.starts_with("README")
        || name.eq_ignore_ascii_case("MANIFEST.csv")
        || name.ends_with(".md"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DiscoverError> {
    let io = |source| DiscoverError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_trace_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn entry(root: &Path, path: PathBuf) -> TraceFile {
    let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
    let mut parts = rel.components();
    let family = if rel.components().count() > 1 {
        parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        root.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "traces".into())
    };
    TraceFile {
        family,
        name: rel.to_string_lossy().into_owned(),
        path,
    }
}

/// Lists the trace files named by `specs`: a folder (every file under it, recursively, except
/// README, LICENSE and MANIFEST files), a file, or a glob pattern (`*`, `?`, `[..]`, `**`). The
/// family of a file is the first folder under the folder given (for a pattern: under the part
/// of the pattern before its first wildcard). Sorted by family and name, duplicates removed.
pub fn discover(specs: &[String]) -> Result<Vec<TraceFile>, DiscoverError> {
    let mut out = Vec::new();
    for spec in specs {
        let path = Path::new(spec);
        if spec.contains(['*', '?', '[']) {
            let cut = spec.find(['*', '?', '[']).unwrap_or(spec.len());
            let root = Path::new(&spec[..cut]);
            let root = if spec[..cut].ends_with('/') {
                root.to_path_buf()
            } else {
                root.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let paths = glob::glob(spec).map_err(|e| DiscoverError::Pattern {
                pattern: spec.clone(),
                message: e.to_string(),
            })?;
            for p in paths.flatten() {
                if p.is_file() && is_trace_file(&p) {
                    out.push(entry(&root, p));
                }
            }
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            out.extend(files.into_iter().map(|p| entry(path, p)));
        } else {
            let root = path
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new(""));
            out.push(entry(root, path.to_path_buf()));
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}
