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

/// What a corpus smoke test replays for `target`: its committed corpus
/// (asserted to hold at least `min_seeds` files, else the seeds were never
/// written) followed by its regressions.
pub fn replay_inputs(target: &str, min_seeds: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all = inputs("corpus", target);
    assert!(
        all.len() >= min_seeds,
        "fuzz/corpus/{target} holds {} seeds; run scripts/fuzz.sh seeds",
        all.len()
    );
    all.extend(inputs("regressions", target));
    all
}

/// Write a target's `seeds` into `fuzz/corpus/<target>/` (the committed
/// seeds, rewritten by the ignored `write_*_seeds` tests); inputs the
/// fuzzer found there (named by their SHA-1) stay. Panics on a write error.
pub fn write_seeds(target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    for (name, data) in seeds {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    let total: usize = seeds.iter().map(|(_, d)| d.len()).sum();
    eprintln!("{} seeds, {total} bytes in {}", seeds.len(), dir.display());
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
