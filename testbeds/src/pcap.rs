//! A minimal libpcap reader and writer: enough to replay any capture's IPv4
//! 5-tuples and IPIDs, and to generate small captures for tests.
//!
//! Reads classic pcap (microsecond and nanosecond magic, either byte order)
//! with link types Ethernet (1, with 802.1Q/802.1ad tags), raw IP (101, 228)
//! and Linux cooked capture (113). Frames that are not IPv4 are skipped and
//! counted. pcapng is not supported (convert with `editcap -F pcap`).

use collector::FiveTuple;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One IPv4 packet of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapPacket {
    /// Capture timestamp, nanoseconds since the epoch.
    pub ts_ns: u64,
    pub tuple: FiveTuple,
    pub ipid: u16,
}

/// A capture's IPv4 packets plus what was skipped.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    pub packets: Vec<PcapPacket>,
    /// Frames skipped because they were not IPv4 (or too short to parse).
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("{path}: cannot read pcap: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: bad pcap at offset {offset}: expected {expected}")]
    Format {
        path: PathBuf,
        offset: u64,
        expected: String,
    },
}

/// Reads a whole capture.
///
/// Errors: [`PcapError::Io`] when the file cannot be read;
/// [`PcapError::Format`] for a bad magic, an unsupported link type or a
/// truncated record header (a truncated final record body is also an error,
/// naming its offset).
pub fn read_pcap(path: &Path) -> Result<Capture, PcapError> {
    let data = std::fs::read(path).map_err(|source| PcapError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_pcap(&data, path)
}

/// Parses a capture held in memory; `path` names it in errors.
pub fn parse_pcap(data: &[u8], path: &Path) -> Result<Capture, PcapError> {
    let fmt_err = |offset: usize, expected: &str| PcapError::Format {
        path: path.to_path_buf(),
        offset: offset as u64,
        expected: expected.to_string(),
    };
    if data.len() < 24 {
        return Err(fmt_err(0, "a 24-byte pcap global header"));
    }
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        0x0a0d_0d0a => {
            return Err(fmt_err(
                0,
                "classic pcap, not pcapng (convert with `editcap -F pcap`)",
            ))
        }
        _ => return Err(fmt_err(0, "pcap magic a1b2c3d4 or a1b23c4d")),
    };
    let rd32 = |o: usize| {
        let b = [data[o], data[o + 1], data[o + 2], data[o + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = rd32(20);
    if !matches!(linktype, 1 | 101 | 228 | 113) {
        return Err(fmt_err(
            20,
            &format!(
                "link type 1 (Ethernet), 101/228 (raw IP) or 113 (Linux SLL), found {linktype}"
            ),
        ));
    }
    let mut cap = Capture::default();
    let mut off = 24usize;
    while off < data.len() {
        if data.len() - off < 16 {
            return Err(fmt_err(off, "a 16-byte record header"));
        }
        let sec = rd32(off) as u64;
        let frac = rd32(off + 4) as u64;
        let incl = rd32(off + 8) as usize;
        let body = off + 16;
        if data.len() - body < incl {
            return Err(fmt_err(body, &format!("{incl} bytes of packet data")));
        }
        let frame = &data[body..body + incl];
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        match ipv4_of(frame, linktype).and_then(parse_ipv4) {
            Some((tuple, ipid)) => cap.packets.push(PcapPacket { ts_ns, tuple, ipid }),
            None => cap.skipped += 1,
        }
        off = body + incl;
    }
    Ok(cap)
}

/// The IPv4 header and payload of a frame, if it carries IPv4.
fn ipv4_of(frame: &[u8], linktype: u32) -> Option<&[u8]> {
    match linktype {
        1 => {
            let mut o = 12;
            loop {
                let et = u16::from_be_bytes([*frame.get(o)?, *frame.get(o + 1)?]);
                match et {
                    0x8100 | 0x88a8 => o += 4,
                    0x0800 => return frame.get(o + 2..),
                    _ => return None,
                }
            }
        }
        113 => {
            let et = u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]);
            (et == 0x0800).then(|| frame.get(16..)).flatten()
        }
        _ => Some(frame),
    }
}

fn parse_ipv4(ip: &[u8]) -> Option<(FiveTuple, u16)> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if ihl < 20 || ip.len() < ihl {
        return None;
    }
    let ipid = u16::from_be_bytes([ip[4], ip[5]]);
    let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    let proto = ip[9];
    let src_ip = u32::from_be_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let dst_ip = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let (src_port, dst_port) =
        if (proto == 6 || proto == 17) && frag_off == 0 && ip.len() >= ihl + 4 {
            (
                u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
                u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
            )
        } else {
            (0, 0)
        };
    Some((
        FiveTuple {
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            proto,
        },
        ipid,
    ))
}

/// Writes 64-byte Ethernet/IPv4 frames (microsecond pcap) for `packets`.
/// Used to generate test captures; checksums are left zero.
pub fn write_pcap(path: &Path, packets: &[PcapPacket]) -> Result<(), PcapError> {
    let io = |source| PcapError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(f);
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&hdr).map_err(io)?;
    for p in packets {
        let mut frame = [0u8; 64];
        frame[12] = 0x08; // ethertype IPv4
        let ip = &mut frame[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&50u16.to_be_bytes()); // 64 - 14 ethernet
        ip[4..6].copy_from_slice(&p.ipid.to_be_bytes());
        ip[8] = 64;
        ip[9] = p.tuple.proto;
        ip[12..16].copy_from_slice(&p.tuple.src_ip.to_be_bytes());
        ip[16..20].copy_from_slice(&p.tuple.dst_ip.to_be_bytes());
        ip[20..22].copy_from_slice(&p.tuple.src_port.to_be_bytes());
        ip[22..24].copy_from_slice(&p.tuple.dst_port.to_be_bytes());
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&((p.ts_ns % 1_000_000_000 / 1000) as u32).to_le_bytes());
        rec.extend_from_slice(&64u32.to_le_bytes());
        rec.extend_from_slice(&64u32.to_le_bytes());
        w.write_all(&rec).map_err(io)?;
        w.write_all(&frame).map_err(io)?;
    }
    w.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_keeps_tuples_ipids_and_microsecond_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let pk: Vec<PcapPacket> = (0..50u32)
            .map(|i| PcapPacket {
                ts_ns: 1_700_000_000_000_000_000 + i as u64 * 3_000,
                tuple: FiveTuple {
                    src_ip: 0x0a00_0001 + i,
                    dst_ip: 0x2000_0001,
                    src_port: 1000 + i as u16,
                    dst_port: 80,
                    proto: if i % 3 == 0 { 17 } else { 6 },
                },
                ipid: (i * 7919) as u16,
            })
            .collect();
        write_pcap(&path, &pk).unwrap();
        let cap = read_pcap(&path).unwrap();
        assert_eq!(cap.skipped, 0);
        assert_eq!(cap.packets, pk);
    }

    #[test]
    fn errors_name_the_offset() {
        let e = parse_pcap(&[0u8; 10], Path::new("x.pcap"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.pcap") && e.contains("offset 0"), "{e}");
        let mut d = vec![0u8; 24];
        d[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        d[20] = 1;
        d.extend_from_slice(&[0u8; 10]);
        let e = parse_pcap(&d, Path::new("x.pcap")).unwrap_err().to_string();
        assert!(e.contains("offset 24"), "{e}");
    }

    #[test]
    fn non_ipv4_frames_are_counted_not_returned() {
        let mut d = vec![0u8; 24];
        d[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        d[20] = 1;
        let mut rec = vec![0u8; 16];
        rec[8] = 60;
        d.extend_from_slice(&rec);
        let mut frame = [0u8; 60];
        frame[12] = 0x86;
        frame[13] = 0xdd; // IPv6
        d.extend_from_slice(&frame);
        let cap = parse_pcap(&d, Path::new("x")).unwrap();
        assert_eq!((cap.packets.len(), cap.skipped), (0, 1));
    }
}
