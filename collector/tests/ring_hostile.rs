//! A buggy or hostile NF can write anything into its ring: the consumer
//! reports and skips, it never panics, and it refuses rings it does not trust.

mod common;

use collector::ring::{layout, Consumer, Producer, RingError, TrustPolicy};
use proptest::prelude::*;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn ring_with_records(path: &Path, n: usize) -> Producer {
    let mut p = Producer::create(path, &common::config("nf", 1 << 13, true)).unwrap();
    for r in common::random_records(5, n, 40, true) {
        p.put_record(&r).unwrap();
    }
    p
}

fn poke(path: &Path, off: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(bytes).unwrap();
}

fn open(path: &Path) -> Result<Consumer, RingError> {
    Consumer::open(path, &TrustPolicy::current_user())
}

/// Drains until error or empty; returns the error if any.
fn drain_all(c: &mut Consumer) -> Option<RingError> {
    let mut v = Vec::new();
    for _ in 0..1000 {
        v.clear();
        match c.drain(100, &mut v) {
            Err(e) => return Some(e),
            Ok(0) => return None,
            Ok(_) => c.commit(),
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random bytes written anywhere in a valid ring (header or data), before
    /// or after the consumer opened it: errors or valid records, no panic.
    #[test]
    fn random_overwrites_never_panic(
        edits in prop::collection::vec((0u64..(4096 + 8192), prop::collection::vec(any::<u8>(), 1..16)), 1..6),
        after_open in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.ring");
        let _p = ring_with_records(&path, 60);
        let apply = || for (off, b) in &edits { poke(&path, *off, b) };
        if !after_open { apply(); }
        match open(&path) {
            Err(e) => prop_assert!(e.to_string().contains("h.ring"), "{}", e),
            Ok(mut c) => {
                if after_open { apply(); }
                if let Some(e) = drain_all(&mut c) {
                    prop_assert!(e.to_string().contains("h.ring"));
                    // Poisoned from then on.
                    let again = c.drain(10, &mut Vec::new());
                    prop_assert!(matches!(again, Err(RingError::Poisoned { .. })), "{:?}", again);
                    prop_assert!(c.loss().lost_corrupt >= 1);
                }
            }
        }
    }

    /// Files of random content and length.
    #[test]
    fn random_files_never_panic(len in 0usize..20000, seed in any::<u64>(), magic in any::<bool>()) {
        use rand::{RngCore, SeedableRng};
        let mut bytes = vec![0u8; len];
        rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
        if magic && len >= 8 {
            bytes[..8].copy_from_slice(&layout::MAGIC.to_le_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Ok(mut c) = open(&path) {
            let _ = drain_all(&mut c);
        }
    }
}

fn header_error(off: u64, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.ring");
    let _p = ring_with_records(&path, 3);
    poke(&path, off, bytes);
    match open(&path) {
        Err(e @ RingError::BadHeader { .. }) => e.to_string(),
        other => panic!("expected a header error, got {other:?}"),
    }
}

#[test]
fn bad_headers_are_named_with_their_offset() {
    assert!(header_error(0, b"XXXXXXXX").contains("offset 0: magic"));
    assert!(header_error(8, &7u32.to_le_bytes()).contains("offset 8: version 7"));
    assert!(header_error(16, &(1u64 << 20).to_le_bytes()).contains("offset 16: data size"));
    assert!(header_error(24, &12u32.to_le_bytes()).contains("offset 24: max record size 12"));
    assert!(header_error(36, &[9]).contains("unknown role 9"));
    assert!(header_error(64, &[b'x'; 64]).contains("not NUL-terminated"));
    assert!(header_error(128, &[0xff, 0xfe, 0]).contains("NF type is not UTF-8"));
    // tail beyond head
    assert!(header_error(640, &(1u64 << 30).to_le_bytes()).contains("impossible head"));
}

#[test]
fn truncated_ring_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ring");
    let _p = ring_with_records(&path, 3);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(5000).unwrap();
    let e = open(&path).unwrap_err();
    assert!(e.to_string().contains("5000 bytes"), "{e}");
}

#[test]
fn ring_shrunk_while_mapped_is_reported_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ring");
    let _p = ring_with_records(&path, 3);
    let mut c = open(&path).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let e = c.drain(10, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("shrank"), "{e}");
}

#[test]
fn corrupt_records_poison_the_ring_after_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 13, false)).unwrap();
    for i in 0..3 {
        p.put_anchor(i, i);
    }
    // Third record (each anchor is 32 bytes): claim an impossible length.
    poke(&path, 4096 + 64, &1000u32.to_le_bytes());
    let mut c = open(&path).unwrap();
    let mut v = Vec::new();
    let e = c.drain(10, &mut v).unwrap_err();
    assert_eq!(
        v.len(),
        2,
        "the good records before the corruption are kept"
    );
    assert!(
        e.to_string()
            .contains(&format!("file offset {}", 4096 + 64)),
        "{e}"
    );
    assert_eq!(c.position(), 64);
    assert_eq!(c.loss().lost_corrupt, 1);
}

#[test]
fn sequence_numbers_going_backwards_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 13, false)).unwrap();
    for i in 0..3 {
        p.put_anchor(i, i);
    }
    poke(&path, 4096 + 64 + 8, &0u64.to_le_bytes()); // third anchor claims seq 0
    let mut c = open(&path).unwrap();
    let e = c.drain(10, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("sequence number 0"), "{e}");
}

#[test]
fn untrusted_rings_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.ring");
    let _p = ring_with_records(&path, 1);
    let mode = |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();

    mode(0o606);
    let e = open(&path).unwrap_err();
    assert!(
        matches!(e, RingError::Untrusted { .. }) && e.to_string().contains("world-writable"),
        "{e}"
    );

    mode(0o660);
    let e = open(&path).unwrap_err();
    assert!(e.to_string().contains("no ring group is configured"), "{e}");
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(&path).unwrap().gid();
    let mut with_group = TrustPolicy::current_user();
    with_group.group = Some(gid);
    assert!(
        Consumer::open(&path, &with_group).is_ok(),
        "group-writable by the configured group"
    );

    mode(0o600);
    let stranger = TrustPolicy {
        allowed_uids: vec![u32::MAX - 1],
        group: None,
    };
    let e = Consumer::open(&path, &stranger).unwrap_err();
    assert!(e.to_string().contains("owned by uid"), "{e}");

    // Symlinks are not followed.
    let link = dir.path().join("l.ring");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(open(&link), Err(RingError::Io { .. })));
}

#[test]
fn rust_created_rings_are_owner_only_or_group_with_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = Producer::create(
        &dir.path().join("a.ring"),
        &common::config("nf", 4096, false),
    )
    .unwrap();
    let m = std::fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(m, 0o600);
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(dir.path()).unwrap().gid();
    let mut cfg = common::config("nf", 4096, false);
    cfg.group = Some(gid);
    let p = Producer::create(&dir.path().join("b.ring"), &cfg).unwrap();
    let m = std::fs::metadata(p.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(m, 0o660);
}

#[test]
fn a_second_consumer_is_refused_while_the_first_drains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.ring");
    let _p = ring_with_records(&path, 1);
    let first = open(&path).unwrap();
    let e = open(&path).unwrap_err();
    assert!(matches!(e, RingError::Busy { .. }), "{e}");
    drop(first);
    assert!(open(&path).is_ok(), "the lock goes with the consumer");
}

fn head_of(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    u64::from_le_bytes(b[512..520].try_into().unwrap())
}

/// A broken consumer that publishes a tail beyond head must not make the
/// producer overwrite anything: it reads as "no room", records are dropped
/// and counted. Checked for the Rust and the C producer.
#[test]
fn a_tail_beyond_head_makes_producers_drop_not_overwrite() {
    use collector::ring::PutOutcome;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 13, false)).unwrap();
    // Fill the ring: the producer has to look at the tail from now on.
    while p.put_anchor(1, 1).is_written() {}
    let before = std::fs::read(&path).unwrap();
    let head = head_of(&path);
    // The same bad tail twice: the second put uses the cached value.
    for bad_tail in [head + 8, head + 8, head + 64, u64::MAX - 7] {
        poke(&path, 640, &bad_tail.to_le_bytes());
        let o = p.put_anchor(2, 2);
        assert!(
            matches!(o, PutOutcome::LostFull { .. }),
            "tail {bad_tail}: {o:?}"
        );
    }
    let after = std::fs::read(&path).unwrap();
    assert_eq!(before[4096..], after[4096..], "data area untouched");
    assert_eq!(head_of(&path), head);
    #[cfg(ms_ring_c)]
    {
        use collector::ring::c_producer::CProducer;
        let cpath = dir.path().join("c.ring");
        let mut c = CProducer::create(&cpath, &common::config("nf", 1 << 13, false)).unwrap();
        while c.put_anchor(1, 1).is_written() {}
        let before = std::fs::read(&cpath).unwrap();
        let head = head_of(&cpath);
        // The same bad tail twice: the second put uses the cached value.
        for bad_tail in [head + 8, head + 8, head + 64, u64::MAX - 7] {
            poke(&cpath, 640, &bad_tail.to_le_bytes());
            let o = c.put_anchor(2, 2);
            assert!(
                matches!(o, PutOutcome::LostFull { .. }),
                "tail {bad_tail}: {o:?}"
            );
        }
        let after = std::fs::read(&cpath).unwrap();
        assert_eq!(before[4096..], after[4096..], "data area untouched");
    }
}

#[test]
fn an_observer_watches_a_ring_the_consumer_holds_without_disturbing_it() {
    use collector::ring::Observer;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.ring");
    let mut p = Producer::create(&path, &common::config("nf", 1 << 13, false)).unwrap();
    p.note_poll(0);
    p.note_poll(3);
    p.put_anchor(1, 1);
    let mut c = open(&path).unwrap();
    let o = Observer::open(&path, &TrustPolicy::current_user()).unwrap();
    assert_eq!(o.identity(), c.identity());
    let before = std::fs::read(&path).unwrap();
    let k = o.counters().unwrap();
    assert_eq!(
        (k.polls, k.empty_polls, k.next_seq, k.head, k.tail),
        (2, 1, 1, 32, 0)
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "observing writes nothing"
    );
    assert_eq!(c.drain_vec(10).unwrap().len(), 1);
    c.commit();
    assert_eq!(o.counters().unwrap().tail, 32);
    // Observers refuse untrusted rings too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(matches!(
        Observer::open(&path, &TrustPolicy::current_user()),
        Err(RingError::Untrusted { .. })
    ));
}
