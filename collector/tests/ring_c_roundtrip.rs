//! The C producer (the header's static inline functions, compiled by
//! build.rs) and the Rust producer write byte-identical rings, and the Rust
//! consumer reads the C producer's records back exactly.

mod common;

#[cfg(ms_ring_c)]
mod with_c {
    use super::common::*;
    use collector::ring::c_producer::CProducer;
    use collector::ring::{layout, BatchView, Consumer, Producer, PutOutcome, TrustPolicy};
    use collector::Record;
    use std::path::Path;

    fn put_c(c: &mut CProducer, r: &Record, zero_copy: bool) -> PutOutcome {
        match r {
            Record::Batch(b) => c.put_batch(&BatchView::from(b), zero_copy).unwrap(),
            Record::Anchor(a) => c.put_anchor(a.tsc, a.mono_ns),
        }
    }

    fn file(p: &Path) -> Vec<u8> {
        std::fs::read(p).unwrap()
    }

    /// Drives both producers with the same records; a consumer drains both
    /// every `drain_every` records (0 = never, so the rings fill and drop).
    fn compare(
        seed: u64,
        n: usize,
        data_size: u64,
        tuples: bool,
        zero_copy: bool,
        drain_every: usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (pr, pc) = (dir.path().join("rust.ring"), dir.path().join("c.ring"));
        let cfg = config("nf0", data_size, tuples);
        let mut rust = Producer::create(&pr, &cfg).unwrap();
        let mut c = CProducer::create(&pc, &cfg).unwrap();
        let trust = TrustPolicy::current_user();
        let mut cr = Consumer::open(&pr, &trust).unwrap();
        let mut cc = Consumer::open(&pc, &trust).unwrap();
        let recs = random_records(seed, n, 300, tuples);
        let (mut got_r, mut got_c, mut expect) = (Vec::new(), Vec::new(), Vec::new());
        for (i, r) in recs.iter().enumerate() {
            let o_r = rust.put_record(r).unwrap();
            let o_c = put_c(&mut c, r, zero_copy);
            assert_eq!(o_r, o_c, "record {i}");
            if o_r.is_written() {
                expect.push(with_seq(r, o_r.seq()));
            }
            if i % 7 == 0 {
                rust.note_poll((i % 3) as u16);
                c.note_poll((i % 3) as u16);
            }
            if drain_every > 0 && i % drain_every == drain_every - 1 {
                cr.drain(usize::MAX, &mut got_r).unwrap();
                cc.drain(usize::MAX, &mut got_c).unwrap();
                cr.commit();
                cc.commit();
            }
        }
        // Byte-identical files (header counters, data area, padding) except
        // the consumer's pid field, which both consumers write alike anyway.
        assert_eq!(file(&pr), file(&pc), "ring files differ");
        cr.drain(usize::MAX, &mut got_r).unwrap();
        cc.drain(usize::MAX, &mut got_c).unwrap();
        assert_eq!(got_c, expect, "C ring read back");
        assert_eq!(got_r, expect, "Rust ring read back");
        assert_eq!(cr.counters(), cc.counters());
        assert_eq!(cc.identity(), &cfg.identity);
        let lost = cc.loss().lost_full + cc.loss().lost_too_big;
        assert_eq!(expect.len() as u64 + lost, n as u64);
        if drain_every == 0 {
            assert!(
                cc.loss().lost_full > 0,
                "the test meant to overflow the ring"
            );
        }
    }

    #[test]
    fn identical_bytes_with_draining_consumer_and_wraparound() {
        compare(1, 3000, 1 << 14, false, false, 5);
    }

    #[test]
    fn identical_bytes_with_tuples_via_zero_copy_reserve_commit() {
        compare(2, 2000, 1 << 16, true, true, 3);
    }

    #[test]
    fn identical_bytes_and_loss_when_nobody_drains() {
        compare(3, 500, 1 << 13, true, false, 0);
    }

    #[test]
    fn too_big_records_are_counted_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config("nf0", 1 << 13, true);
        cfg.max_record_size = Some(256);
        let mut rust = Producer::create(&dir.path().join("r.ring"), &cfg).unwrap();
        let mut c = CProducer::create(&dir.path().join("c.ring"), &cfg).unwrap();
        let ipids = vec![7u16; 64];
        let tuples = vec![collector::FiveTuple::default(); 64];
        let b = BatchView {
            tsc: 1,
            requested: 64,
            ipids: &ipids,
            non_ipv4: &[],
            tuples: Some(&tuples),
        };
        assert_eq!(
            layout::batch_len(64, layout::BATCH_F_TUPLES),
            32 + 128 + 832
        );
        assert_eq!(
            rust.put_batch(&b).unwrap(),
            PutOutcome::LostTooBig { seq: 0 }
        );
        assert_eq!(
            c.put_batch(&b, false).unwrap(),
            PutOutcome::LostTooBig { seq: 0 }
        );
        let small = BatchView {
            ipids: &ipids[..4],
            tuples: Some(&tuples[..4]),
            ..b
        };
        assert_eq!(
            rust.put_batch(&small).unwrap(),
            PutOutcome::Written { seq: 1 }
        );
        assert_eq!(
            c.put_batch(&small, true).unwrap(),
            PutOutcome::Written { seq: 1 }
        );
        let mut cons = Consumer::open(c.path(), &TrustPolicy::current_user()).unwrap();
        let got = cons.drain_vec(10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].seq(), 1);
        assert_eq!(cons.loss().lost_too_big, 1);
        assert_eq!(file(rust.path()), file(c.path()));
    }

    #[test]
    fn c_created_ring_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let c = CProducer::create(&dir.path().join("c.ring"), &config("nf0", 4096, false)).unwrap();
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("c.ring")]);
    }
}

#[cfg(ms_ring_no_c)]
#[test]
fn c_compiler_required_for_the_c_round_trip() {
    panic!("collector/build.rs found no working C compiler: the C producer could not be tested");
}
