//! The fuzz seed corpus (`fuzz/corpus/read_trace/`), generated
//! deterministically: `cargo run -p tracefile --example gen_corpus`.
//! Files named `valid-*` must read in strict mode; `damaged-*` must fail in
//! strict mode and read in salvage mode.

use collector::{
    BatchRecord, ClockAnchor, Direction, FiveTuple, LossCounters, Record, Role, StreamInfo,
    TraceMeta,
};
use tracefile::format::{frame_chunk, ChunkHeader};
use tracefile::TraceWriter;

fn info(id: u32, tuples: bool) -> StreamInfo {
    StreamInfo {
        id,
        nf: format!("nf{id}"),
        nf_type: "nat".into(),
        role: Role::Nf,
        port: 1,
        queue: 0,
        direction: if id.is_multiple_of(2) {
            Direction::Rx
        } else {
            Direction::Tx
        },
        host: "h".into(),
        carries_tuples: tuples,
    }
}

fn batch(seq: u64, tsc: u64, n: u16, tuples: bool) -> Record {
    let ipids: Vec<u16> = (0..n)
        .map(|i| (seq as u16).wrapping_mul(31).wrapping_add(i * 7))
        .collect();
    Record::Batch(BatchRecord {
        seq,
        tsc,
        requested: 32,
        non_ipv4: if n > 2 && seq.is_multiple_of(5) {
            vec![2]
        } else {
            vec![]
        },
        tuples: tuples.then(|| {
            (0..n)
                .map(|i| FiveTuple {
                    src_ip: 0x0a00_0000 + u32::from(i),
                    dst_ip: 0xc0a8_0001,
                    src_port: 1000 + i,
                    dst_port: 53,
                    proto: 17,
                })
                .collect()
        }),
        ipids,
    })
}

fn base(tuples: bool, gaps: bool) -> Vec<u8> {
    let mut w = TraceWriter::new(
        Vec::new(),
        &TraceMeta {
            producer: "corpus".into(),
            ..Default::default()
        },
    )
    .unwrap();
    w.set_chunk_records(6);
    for id in 0..2 {
        w.declare_stream(&info(id, tuples && id == 1)).unwrap();
    }
    let mut lost = LossCounters::default();
    for seq in 0..20u64 {
        if gaps && (seq == 7 || seq == 8) {
            lost.lost_full += 1;
            continue;
        }
        for id in 0..2u32 {
            let tsc = 10_000 + seq * 2_600 + u64::from(id) * 300;
            let r = if seq.is_multiple_of(8) {
                Record::Anchor(ClockAnchor {
                    seq,
                    tsc,
                    mono_ns: seq * 1_000,
                })
            } else {
                batch(seq, tsc, (seq % 33) as u16, tuples && id == 1)
            };
            w.push(id, r, &lost).unwrap();
        }
    }
    w.finish().unwrap()
}

/// (file name, bytes) of every seed.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let plain = base(false, false);
    let mut out = vec![
        ("valid-plain.bin".to_string(), plain.clone()),
        ("valid-tuples.bin".to_string(), base(true, false)),
        ("valid-gaps.bin".to_string(), base(false, true)),
    ];
    // No footer: a killed writer's file, cut at a chunk boundary.
    let footer_len = 80 + tracefile::format::FOOTER_PAYLOAD_LEN;
    out.push((
        "valid-no-footer.bin".into(),
        plain[..plain.len() - footer_len].to_vec(),
    ));
    // Duplicate chunk and an unknown chunk kind appended.
    let mut dup = plain[..plain.len() - footer_len].to_vec();
    let mut extra = Vec::new();
    frame_chunk(
        &mut extra,
        ChunkHeader {
            kind: 200,
            ..Default::default()
        },
        |o| o.extend_from_slice(b"future"),
    );
    let tail = plain.len() - footer_len - 400;
    let reader = tracefile::TraceReader::new(&plain[..], "x", tracefile::ReadMode::Strict).unwrap();
    let last_records = reader
        .filter_map(Result::ok)
        .filter(|c| {
            matches!(c.body, tracefile::ChunkBody::Records(_)) && (c.offset as usize) < tail
        })
        .last()
        .unwrap();
    let (a, b) = (
        last_records.offset as usize,
        (last_records.offset + last_records.len) as usize,
    );
    dup.extend_from_slice(&plain[a..b]);
    dup.extend_from_slice(&extra);
    out.push(("valid-dup-unknown.bin".into(), dup));
    // Damage.
    out.push((
        "damaged-torn.bin".into(),
        plain[..plain.len() - footer_len - 37].to_vec(),
    ));
    let mut flip = plain.clone();
    flip[plain.len() / 2] ^= 0x10;
    out.push(("damaged-bitflip.bin".into(), flip));
    let mut garbage = plain.clone();
    let mid = plain.len() / 3;
    garbage.splice(
        mid..mid,
        b"MSCK\x03garbage that looks like a chunk start"
            .iter()
            .copied(),
    );
    out.push(("damaged-garbage.bin".into(), garbage));
    let mut len = plain.clone();
    // The payload length of the first stream declaration, made huge.
    let decl = 16 + u32::from_le_bytes([plain[24], plain[25], plain[26], plain[27]]) as usize + 80;
    len[decl + 8..decl + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    out.push(("damaged-huge-length.bin".into(), len));
    out
}
