//! Shared test fixtures: a deterministic PRNG and small sample traces.
#![allow(dead_code)]

use collector::{
    BatchRecord, ClockAnchor, Direction, Edge, FiveTuple, LossCounters, NfSpec, Record, Role,
    StreamInfo, Topology, TraceMeta,
};
use tracefile::TraceWriter;

/// SplitMix64: deterministic, dependency-free.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn meta() -> TraceMeta {
    TraceMeta {
        producer: "tracefile tests".into(),
        topology: Some(Topology {
            nfs: vec![
                NfSpec {
                    name: "src".into(),
                    nf_type: "source".into(),
                    role: Role::Source,
                    peak_rate_pps: None,
                },
                NfSpec {
                    name: "fw1".into(),
                    nf_type: "firewall".into(),
                    role: Role::Nf,
                    peak_rate_pps: Some(1.5e6),
                },
            ],
            edges: vec![Edge {
                from: "src".into(),
                to: "fw1".into(),
            }],
        }),
        tsc_hz_hint: Some(2.6e9),
    }
}

pub fn stream(id: u32, nf: &str, dir: Direction, tuples: bool) -> StreamInfo {
    StreamInfo {
        id,
        nf: nf.into(),
        nf_type: if nf == "src" { "source" } else { "firewall" }.into(),
        role: if nf == "src" { Role::Source } else { Role::Nf },
        port: 0,
        queue: id as u16,
        direction: dir,
        host: "h1".into(),
        carries_tuples: tuples,
    }
}

/// `n` records of one stream starting at `seq0`: mostly 32-packet batches
/// with random IPIDs, some partial batches, an anchor every 16 records.
pub fn records(rng: &mut Rng, seq0: u64, n: usize, tuples: bool) -> Vec<Record> {
    let mut tsc = 1_000_000 + rng.below(1000);
    let mut out = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let seq = seq0 + i;
        tsc += 500 + rng.below(3000);
        if seq.is_multiple_of(16) {
            out.push(Record::Anchor(ClockAnchor {
                seq,
                tsc,
                mono_ns: (tsc as f64 / 2.6) as u64 + 7,
            }));
            continue;
        }
        let len = if rng.below(4) == 0 {
            rng.below(33) as usize
        } else {
            32
        };
        let ipids: Vec<u16> = (0..len).map(|_| rng.next() as u16).collect();
        let non_ipv4 = if len > 3 && rng.below(10) == 0 {
            vec![1, 3]
        } else {
            vec![]
        };
        let tuples = tuples.then(|| {
            (0..len)
                .map(|_| FiveTuple {
                    src_ip: rng.next() as u32,
                    dst_ip: 0x0a00_0001,
                    src_port: rng.next() as u16,
                    dst_port: 80,
                    proto: 6,
                })
                .collect()
        });
        out.push(Record::Batch(BatchRecord {
            seq,
            tsc,
            requested: 32,
            ipids,
            non_ipv4,
            tuples,
        }));
    }
    out
}

/// One chunk as written: its byte range and content.
#[derive(Clone, Debug)]
pub struct Written {
    pub start: u64,
    pub end: u64,
    pub stream: Option<u32>,
    pub records: Vec<Record>,
}

/// A small trace: meta, 2 streams (one with tuples), 3 record chunks each,
/// interleaved; returns the bytes and every chunk's range and records.
pub fn small_trace(per_chunk: usize) -> (Vec<u8>, Vec<Written>) {
    let mut rng = Rng(42);
    let mut w = TraceWriter::new(Vec::new(), &meta()).unwrap();
    let mut chunks = vec![Written {
        start: 16,
        end: w.offset(),
        stream: None,
        records: vec![],
    }];
    for id in 0..2u32 {
        let start = w.offset();
        w.declare_stream(&stream(
            id,
            if id == 0 { "src" } else { "fw1" },
            Direction::Tx,
            id == 1,
        ))
        .unwrap();
        chunks.push(Written {
            start,
            end: w.offset(),
            stream: None,
            records: vec![],
        });
    }
    let all: Vec<Vec<Record>> = (0..2)
        .map(|id| records(&mut rng, 0, 3 * per_chunk, id == 1))
        .collect();
    for c in 0..3 {
        for (id, recs) in all.iter().enumerate() {
            let part = &recs[c * per_chunk..(c + 1) * per_chunk];
            let start = w.offset();
            w.write_chunk(id as u32, part, &LossCounters::default())
                .unwrap();
            chunks.push(Written {
                start,
                end: w.offset(),
                stream: Some(id as u32),
                records: part.to_vec(),
            });
        }
    }
    let start = w.offset();
    let bytes = w.finish().unwrap();
    chunks.push(Written {
        start,
        end: bytes.len() as u64,
        stream: None,
        records: vec![],
    });
    (bytes, chunks)
}
