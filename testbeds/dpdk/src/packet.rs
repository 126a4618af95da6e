//! Ethernet/IPv4/UDP/TCP frames as byte slices: parse, build, rewrite with
//! correct checksums. Pure Rust, no DPDK: the NFs run these on mbuf data and
//! the tests run them on `Vec<u8>`.
//!
//! Contract: [`parse`] returns `None` for anything that is not a complete
//! IPv4 header behind Ethernet (optionally VLAN-tagged); after it returns
//! `Some`, the offsets it gives are inside the frame and the rewrite helpers
//! do not panic on that frame.

use collector::FiveTuple;

/// Ethernet header length without VLAN tags.
pub const ETH_LEN: usize = 14;
/// Length of the frames the generator builds (the paper's 64-byte packets,
/// without FCS).
pub const FRAME_LEN: usize = 64;

/// Offsets and fields of a parsed IPv4 frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Offset of the IPv4 header.
    pub l3: usize,
    /// Offset of the L4 header (after IP options).
    pub l4: usize,
    /// Length of the L4 header when TCP/UDP and complete, else 0.
    pub l4_len: usize,
    pub tuple: FiveTuple,
    pub ipid: u16,
    /// IPv4 total length field.
    pub total_len: u16,
}

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Parses an Ethernet (up to two VLAN tags) + IPv4 frame.
pub fn parse(f: &[u8]) -> Option<Parsed> {
    if f.len() < ETH_LEN {
        return None;
    }
    let mut l3 = ETH_LEN;
    let mut et = be16(f, 12);
    while (et == 0x8100 || et == 0x88a8) && f.len() >= l3 + 4 {
        et = be16(f, l3 + 2);
        l3 += 4;
    }
    if et != 0x0800 || f.len() < l3 + 20 || f[l3] >> 4 != 4 {
        return None;
    }
    let ihl = (f[l3] & 0x0f) as usize * 4;
    if ihl < 20 || f.len() < l3 + ihl {
        return None;
    }
    let l4 = l3 + ihl;
    let proto = f[l3 + 9];
    let first_frag = (be16(f, l3 + 6) & 0x1fff) == 0;
    let (mut sp, mut dp, mut l4_len) = (0, 0, 0);
    if first_frag {
        match proto {
            17 if f.len() >= l4 + 8 => {
                sp = be16(f, l4);
                dp = be16(f, l4 + 2);
                l4_len = 8;
            }
            6 if f.len() >= l4 + 20 => {
                let off = (f[l4 + 12] >> 4) as usize * 4;
                sp = be16(f, l4);
                dp = be16(f, l4 + 2);
                if off >= 20 && f.len() >= l4 + off {
                    l4_len = off;
                }
            }
            _ => {}
        }
    }
    Some(Parsed {
        l3,
        l4,
        l4_len,
        tuple: FiveTuple {
            src_ip: be32(f, l3 + 12),
            dst_ip: be32(f, l3 + 16),
            src_port: sp,
            dst_port: dp,
            proto,
        },
        ipid: be16(f, l3 + 4),
        total_len: be16(f, l3 + 2),
    })
}

/// One's-complement sum of 16-bit words (odd trailing byte padded).
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Recomputes the IPv4 header checksum in place.
pub fn fix_ipv4_checksum(f: &mut [u8], p: &Parsed) {
    let ihl = p.l4 - p.l3;
    f[p.l3 + 10] = 0;
    f[p.l3 + 11] = 0;
    let c = fold(sum16(&f[p.l3..p.l3 + ihl], 0));
    f[p.l3 + 10..p.l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// Recomputes the TCP or UDP checksum over the pseudo header and the L4
/// segment as delimited by the IPv4 total length. No-op for other protocols
/// or truncated segments.
pub fn fix_l4_checksum(f: &mut [u8], p: &Parsed) {
    let seg_end = p.l3 + p.total_len as usize;
    if p.l4_len == 0 || seg_end > f.len() || seg_end < p.l4 + p.l4_len {
        return;
    }
    let off = match p.tuple.proto {
        17 => 6,
        6 => 16,
        _ => return,
    };
    f[p.l4 + off] = 0;
    f[p.l4 + off + 1] = 0;
    let seg_len = (seg_end - p.l4) as u32;
    let mut acc = sum16(&f[p.l3 + 12..p.l3 + 20], 0);
    acc += p.tuple.proto as u32 + seg_len;
    acc = sum16(&f[p.l4..seg_end], acc);
    let mut c = fold(acc);
    if c == 0 && p.tuple.proto == 17 {
        c = 0xffff;
    }
    f[p.l4 + off..p.l4 + off + 2].copy_from_slice(&c.to_be_bytes());
}

/// Sets source (or destination) address and port, then fixes both
/// checksums. The IPID is left untouched: Microscope follows packets across
/// NFs by it.
pub fn rewrite(f: &mut [u8], p: &mut Parsed, src: bool, ip: u32, port: u16) {
    let (ip_off, port_off) = if src { (12, 0) } else { (16, 2) };
    f[p.l3 + ip_off..p.l3 + ip_off + 4].copy_from_slice(&ip.to_be_bytes());
    if p.l4_len > 0 {
        f[p.l4 + port_off..p.l4 + port_off + 2].copy_from_slice(&port.to_be_bytes());
    }
    if src {
        p.tuple.src_ip = ip;
        if p.l4_len > 0 {
            p.tuple.src_port = port;
        }
    } else {
        p.tuple.dst_ip = ip;
        if p.l4_len > 0 {
            p.tuple.dst_port = port;
        }
    }
    fix_ipv4_checksum(f, p);
    fix_l4_checksum(f, p);
}

/// Sets the IPv4 identification and fixes the header checksum.
pub fn set_ipid(f: &mut [u8], p: &mut Parsed, ipid: u16) {
    f[p.l3 + 4..p.l3 + 6].copy_from_slice(&ipid.to_be_bytes());
    p.ipid = ipid;
    fix_ipv4_checksum(f, p);
}

/// Builds a frame of `len` bytes (at least 14 + 20 + L4 header) carrying
/// `t` with identification `ipid`: UDP for protocol 17, TCP for 6 (an ACK
/// segment), bare IPv4 otherwise. Payload bytes are a deterministic pattern.
/// Returns `None` when `len` is too small or above 1514.
pub fn build_frame(t: &FiveTuple, ipid: u16, len: usize) -> Option<Vec<u8>> {
    let l4_len = match t.proto {
        17 => 8,
        6 => 20,
        _ => 0,
    };
    if len < ETH_LEN + 20 + l4_len || len > 1514 {
        return None;
    }
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let l3 = ETH_LEN;
    let total = (len - ETH_LEN) as u16;
    f[l3] = 0x45;
    f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
    f[l3 + 4..l3 + 6].copy_from_slice(&ipid.to_be_bytes());
    f[l3 + 8] = 64;
    f[l3 + 9] = t.proto;
    f[l3 + 12..l3 + 16].copy_from_slice(&t.src_ip.to_be_bytes());
    f[l3 + 16..l3 + 20].copy_from_slice(&t.dst_ip.to_be_bytes());
    let l4 = l3 + 20;
    if l4_len > 0 {
        f[l4..l4 + 2].copy_from_slice(&t.src_port.to_be_bytes());
        f[l4 + 2..l4 + 4].copy_from_slice(&t.dst_port.to_be_bytes());
    }
    if t.proto == 17 {
        f[l4 + 4..l4 + 6].copy_from_slice(&((len - l4) as u16).to_be_bytes());
    } else if t.proto == 6 {
        f[l4 + 12] = 5 << 4;
        f[l4 + 13] = 0x10;
        f[l4 + 14..l4 + 16].copy_from_slice(&8192u16.to_be_bytes());
    }
    for (i, b) in f[l4 + l4_len..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(7);
    }
    let p = parse(&f)?;
    fix_ipv4_checksum(&mut f, &p);
    fix_l4_checksum(&mut f, &p);
    Some(f)
}

/// True when the IPv4 header checksum of a parsed frame is valid.
pub fn ipv4_checksum_ok(f: &[u8], p: &Parsed) -> bool {
    fold(sum16(&f[p.l3..p.l4], 0)) == 0
}

/// True when the TCP/UDP checksum of a parsed frame is valid (UDP checksum
/// 0 means "none" and counts as valid).
pub fn l4_checksum_ok(f: &[u8], p: &Parsed) -> bool {
    let seg_end = p.l3 + p.total_len as usize;
    if p.l4_len == 0 || seg_end > f.len() {
        return true;
    }
    if p.tuple.proto == 17 && be16(f, p.l4 + 6) == 0 {
        return true;
    }
    let mut acc = sum16(&f[p.l3 + 12..p.l3 + 20], 0);
    acc += p.tuple.proto as u32 + (seg_end - p.l4) as u32;
    acc = sum16(&f[p.l4..seg_end], acc);
    fold(acc) == 0
}

/// A flow hash that is stable across processes (FNV-1a over the packed
/// 5-tuple); used to spread flows over an NF's outputs.
pub fn flow_hash(t: &FiveTuple) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in t.to_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: u8) -> FiveTuple {
        FiveTuple {
            src_ip: 0x0a00_0001,
            dst_ip: 0xc0a8_0102,
            src_port: 1234,
            dst_port: 80,
            proto,
        }
    }

    #[test]
    fn build_then_parse_round_trips_with_valid_checksums() {
        for proto in [17u8, 6, 1] {
            let f = build_frame(&t(proto), 0xbeef, FRAME_LEN).unwrap();
            assert_eq!(f.len(), FRAME_LEN);
            let p = parse(&f).unwrap();
            assert_eq!(p.ipid, 0xbeef);
            assert_eq!(p.tuple.proto, proto);
            assert_eq!(p.tuple.src_ip, 0x0a00_0001);
            if proto != 1 {
                assert_eq!((p.tuple.src_port, p.tuple.dst_port), (1234, 80));
            }
            assert!(ipv4_checksum_ok(&f, &p));
            assert!(l4_checksum_ok(&f, &p));
        }
    }

    #[test]
    fn rewrite_keeps_ipid_and_checksums_valid() {
        for proto in [17u8, 6] {
            let mut f = build_frame(&t(proto), 4242, FRAME_LEN).unwrap();
            let mut p = parse(&f).unwrap();
            rewrite(&mut f, &mut p, true, 0x6464_0001, 40000);
            let q = parse(&f).unwrap();
            assert_eq!(q.ipid, 4242);
            assert_eq!(q.tuple.src_ip, 0x6464_0001);
            assert_eq!(q.tuple.src_port, 40000);
            assert_eq!(q.tuple, p.tuple);
            assert!(ipv4_checksum_ok(&f, &q));
            assert!(l4_checksum_ok(&f, &q), "proto {proto}");
            // A corrupted byte is detected: the checks can fail.
            f[q.l4 + q.l4_len] ^= 0xff;
            assert!(!l4_checksum_ok(&f, &q));
        }
    }

    #[test]
    fn non_ipv4_and_truncated_frames_are_rejected() {
        let mut f = build_frame(&t(17), 1, FRAME_LEN).unwrap();
        assert!(parse(&f[..14 + 19]).is_none());
        f[12] = 0x86;
        f[13] = 0xdd;
        assert!(parse(&f).is_none());
        assert!(parse(&[0u8; 64]).is_none());
        assert!(build_frame(&t(6), 1, 40).is_none());
    }

    #[test]
    fn set_ipid_updates_checksum() {
        let mut f = build_frame(&t(17), 1, FRAME_LEN).unwrap();
        let mut p = parse(&f).unwrap();
        set_ipid(&mut f, &mut p, 999);
        let q = parse(&f).unwrap();
        assert_eq!(q.ipid, 999);
        assert!(ipv4_checksum_ok(&f, &q));
    }
}
