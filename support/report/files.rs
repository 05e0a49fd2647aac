//! Journals on disk: one JSON file per finished scenario in the run folder, named after its
//! requirement, never overwriting another scenario's.

use std::path::{Path, PathBuf};

use crate::vocab::journal::Journal;

/// Reads a journal written by [`write_journal`].
pub fn read_journal(path: &Path) -> Result<Journal, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `journal` as `<dir>/<requirement>-<n>.json` and returns the path.
pub fn write_journal(journal: &Journal, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = serde_json::to_string_pretty(journal).map_err(|e| e.to_string())?;
    for n in 1.. {
        let path = dir.join(format!("{}-{n}.json", journal.requirement));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(text.as_bytes())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    unreachable!("an unbounded range always yields a free name")
}
