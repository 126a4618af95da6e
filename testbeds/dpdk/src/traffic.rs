//! Traffic for the generator: a synthetic CAIDA-like mix (heavy-tailed flow
//! popularity, per-flow IPID counters like real hosts) or the frames of a
//! pcap file replayed as captured.
//!
//! The generator loops over a [`Traffic`]'s schedule at a set rate. For
//! synthetic traffic it rewrites each packet's IPID from its flow's counter,
//! so IPIDs of one flow advance by one per packet as on a real host; a
//! replayed capture keeps its own IPIDs.

use crate::packet::{self, FRAME_LEN};
use collector::FiveTuple;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Frames to send in order, forever.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Distinct frames (one per flow for synthetic traffic).
    pub frames: Vec<Vec<u8>>,
    /// The schedule: indices into `frames`.
    pub order: Vec<u32>,
    /// Rewrite IPIDs from a per-frame counter (synthetic traffic).
    pub rewrite_ipid: bool,
    /// Initial per-frame IPID counters.
    pub ipid_start: Vec<u16>,
}

/// Zipf-like popularity over `flows` flows, `len` scheduled packets.
pub fn synthetic(flows: usize, len: usize, seed: u64) -> Traffic {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let flows = flows.max(1);
    let mut frames = Vec::with_capacity(flows);
    let mut ipid_start = Vec::with_capacity(flows);
    for i in 0..flows {
        let t = random_tuple(&mut rng, i as u32);
        frames.push(packet::build_frame(&t, 0, FRAME_LEN).expect("64-byte frame fits"));
        ipid_start.push(rng.gen());
    }
    // Zipf(s=1.1) weights via the cumulative distribution.
    let weights: Vec<f64> = (1..=flows).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(flows);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let order = (0..len)
        .map(|_| {
            let u: f64 = rng.gen();
            cdf.partition_point(|&c| c < u).min(flows - 1) as u32
        })
        .collect();
    Traffic {
        frames,
        order,
        rewrite_ipid: true,
        ipid_start,
    }
}

/// A random UDP/TCP flow from 10.0.0.0/8 to 192.168.0.0/16; `i` makes
/// source ports distinct across a traffic mix.
pub fn random_tuple(rng: &mut ChaCha8Rng, i: u32) -> FiveTuple {
    FiveTuple {
        src_ip: 0x0a00_0000 | (rng.gen::<u32>() & 0x00ff_ffff),
        dst_ip: 0xc0a8_0000 | (rng.gen::<u32>() & 0xffff),
        src_port: 1024 + (i % 60000) as u16,
        dst_port: [53u16, 80, 443, 123, 8080, 5060][rng.gen_range(0..6)],
        proto: if rng.gen_bool(0.6) { 6 } else { 17 },
    }
}

/// Error reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: offset {offset}: expected {expected}")]
    Format {
        path: String,
        offset: usize,
        expected: &'static str,
    },
}

/// Replays a classic pcap with Ethernet link type: every frame, as
/// captured (truncated to 2048 bytes), in capture order.
pub fn from_pcap(path: &Path) -> Result<Traffic, PcapError> {
    let name = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| PcapError::Io {
        path: name.clone(),
        source,
    })?;
    let err = |offset, expected| PcapError::Format {
        path: name.clone(),
        offset,
        expected,
    };
    if data.len() < 24 {
        return Err(err(0, "a 24-byte pcap global header"));
    }
    let le = match u32::from_le_bytes([data[0], data[1], data[2], data[3]]) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => return Err(err(0, "pcap magic a1b2c3d4 (pcapng is not supported)")),
    };
    let rd = |o: usize| {
        let b = [data[o], data[o + 1], data[o + 2], data[o + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    if rd(20) != 1 {
        return Err(err(20, "link type 1 (Ethernet)"));
    }
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        if off + 16 > data.len() {
            return Err(err(off, "a 16-byte record header"));
        }
        let incl = rd(off + 8) as usize;
        let body = off + 16;
        if body + incl > data.len() {
            return Err(err(off, "a record body within the file"));
        }
        let f = &data[body..body + incl.min(2048)];
        if f.len() >= 14 {
            frames.push(f.to_vec());
        }
        off = body + incl;
    }
    if frames.is_empty() {
        return Err(err(24, "at least one Ethernet frame"));
    }
    let n = frames.len() as u32;
    let ipid_start = frames
        .iter()
        .map(|f| packet::parse(f).map_or(0, |p| p.ipid))
        .collect();
    Ok(Traffic {
        frames,
        order: (0..n).collect(),
        rewrite_ipid: false,
        ipid_start,
    })
}

/// Writes frames as a classic pcap (microsecond timestamps, 1 µs apart).
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(24 + frames.iter().map(|f| f.len() + 16).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&((i / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((i % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_is_deterministic_and_heavy_tailed() {
        let a = synthetic(100, 10_000, 7);
        let b = synthetic(100, 10_000, 7);
        assert_eq!(a.order, b.order);
        assert_eq!(a.frames, b.frames);
        let mut counts = vec![0usize; 100];
        for &i in &a.order {
            counts[i as usize] += 1;
        }
        // The most popular flow carries far more than the median one.
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        assert!(counts[0] > 10 * sorted[50].max(1), "{counts:?}");
        assert_ne!(synthetic(100, 1000, 8).order, a.order[..1000].to_vec());
    }

    #[test]
    fn pcap_round_trip_keeps_frames_and_ipids() {
        let t = synthetic(5, 10, 1);
        let frames: Vec<Vec<u8>> = (0..5u16)
            .map(|i| {
                let mut f = t.frames[i as usize].clone();
                let mut p = packet::parse(&f).unwrap();
                packet::set_ipid(&mut f, &mut p, 1000 + i);
                f
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        write_pcap(&path, &frames).unwrap();
        let r = from_pcap(&path).unwrap();
        assert_eq!(r.frames, frames);
        assert_eq!(r.ipid_start, vec![1000, 1001, 1002, 1003, 1004]);
        assert!(!r.rewrite_ipid);
        // Truncation is reported with its offset.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = from_pcap(&path).unwrap_err().to_string();
        assert!(e.contains("offset") && e.contains("record body"), "{e}");
    }
}
