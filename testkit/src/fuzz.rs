//! The fuzz targets' inputs as the default test run replays them: every
//! file of `fuzz/<kind>/<target>/` (kind `corpus` or `regressions`), in
//! name order, for the corpus smoke tests of the crates whose code the
//! targets exercise.

use std::path::{Path, PathBuf};

/// The repository's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<kind>/<target>`, in name order, with its bytes;
/// empty when the directory does not exist. Panics on a file it cannot
/// read (a test input that is there but unreadable is a broken checkout).
pub fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_corpora_are_found_in_name_order() {
        let records = inputs("corpus", "records");
        assert!(records.len() > 10, "{} records seeds", records.len());
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(inputs("corpus", "no-such-target").is_empty());
    }
}
