//! Replays the fuzz corpus through the reader as a normal test.

mod common;
#[path = "common/corpus.rs"]
mod corpus;

use std::path::Path;
use tracefile::{read_from, read_trace_bytes, ReadMode};

/// Hands out 1 to 7 bytes per read, to exercise the reader's buffering at
/// every chunk and header boundary.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = self.1 % 7 + 1;
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/read_trace")
}

#[test]
fn seeds_are_committed_and_current() {
    for (name, bytes) in corpus::seeds() {
        let on_disk = std::fs::read(corpus_dir().join(&name))
            .unwrap_or_else(|e| panic!("{name}: {e} (run the gen_corpus example)"));
        assert!(
            on_disk == bytes,
            "{name} differs from the generator: the format changed? regenerate and bump the version rule"
        );
        assert!(bytes.len() < 8192, "{name}: seeds stay small");
    }
}

#[test]
fn every_corpus_file_reads_without_panicking() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let strict = read_trace_bytes(&bytes, ReadMode::Strict);
        let salvage = read_trace_bytes(&bytes, ReadMode::Salvage);
        for (mode, whole) in [(ReadMode::Strict, &strict), (ReadMode::Salvage, &salvage)] {
            let trickled = read_from(Trickle(&bytes, 0), Path::new("<memory>"), mode);
            match (whole, &trickled) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{name} {mode:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{name}"),
                _ => panic!("{name} {mode:?}: {whole:?} vs {trickled:?}"),
            }
        }
        if name.starts_with("valid-") {
            let t = strict.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(t.records() > 0, "{name}");
            assert_eq!(
                salvage.unwrap(),
                t,
                "{name}: salvage of a valid file differs"
            );
        } else if name.starts_with("damaged-") {
            assert!(strict.is_err(), "{name}: strict accepted damage");
            let t = salvage.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!t.report.skipped.is_empty(), "{name}");
            assert!(t.records() > 0, "{name}: salvage found nothing");
        }
        // Files the fuzzer added: reaching here without a panic is the test.
        n += 1;
    }
    assert!(n >= corpus::seeds().len());
}
