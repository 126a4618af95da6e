//! The Rust mirror of `shim-c/include/microscope_ring.h`: the ring file's
//! header, record headers, constants and the batch-record length rule.
//!
//! Every size and offset is asserted at compile time here and in the C
//! header; `collector/tests/ring_layout.rs` compiles the header and compares
//! the two sides field by field.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64};

#[cfg(not(target_endian = "little"))]
compile_error!("the ring layout is little-endian; big-endian targets are not supported");

/// `"MSCRING1"` read as a little-endian u64.
pub const MAGIC: u64 = 0x3147_4E49_5243_534D;
pub const VERSION: u32 = 1;
/// Bytes before the data area; also `size_of::<RingHeader>()`.
pub const HEADER_SIZE: usize = 4096;
pub const MIN_DATA_SIZE: u64 = 4096;
/// Largest data area the Rust side creates or accepts (1 TiB).
pub const MAX_DATA_SIZE: u64 = 1 << 40;
pub const MIN_MAX_RECORD: u32 = 64;
/// Upper bound of `max_record_size`: a 65535-packet batch with tuples is
/// under 1 MiB, and the consumer never allocates more than this per record.
pub const MAX_MAX_RECORD: u32 = 1 << 20;
/// Length of each name field (NUL-terminated, so 63 usable bytes).
pub const NAME_LEN: usize = 64;

/// Ring flag: batch records of this stream carry 5-tuples.
pub const RING_F_CARRIES_TUPLES: u32 = 0x1;

pub const ROLE_SOURCE: u8 = 0;
pub const ROLE_NF: u8 = 1;
pub const ROLE_SINK: u8 = 2;
pub const DIR_RX: u8 = 0;
pub const DIR_TX: u8 = 1;

pub const REC_BATCH: u16 = 1;
pub const REC_ANCHOR: u16 = 2;
pub const REC_PAD: u16 = 3;

pub const BATCH_F_NON_IPV4: u16 = 0x1;
pub const BATCH_F_TUPLES: u16 = 0x2;
pub const BATCH_F_ALL: u16 = BATCH_F_NON_IPV4 | BATCH_F_TUPLES;

/// Size of the fixed part of a record header, of a batch record and of an
/// anchor record.
pub const REC_HDR_SIZE: usize = 8;
pub const BATCH_FIXED_SIZE: usize = 32;
pub const ANCHOR_SIZE: usize = 32;

/// Mirror of `struct ms_ring_header`. Only used through raw pointers into
/// the mapping (fields that change after creation are atomics).
#[repr(C)]
pub struct RingHeader {
    pub magic: AtomicU64,
    pub version: u32,
    pub header_size: u32,
    pub data_size: u64,
    pub max_record_size: u32,
    pub flags: u32,
    pub pid: u32,
    pub role: u8,
    pub direction: u8,
    pub port: u16,
    pub queue: u16,
    pub reserved0: u16,
    pub reserved1: u32,
    pub created_ns: u64,
    pub tsc_hz_hint: u64,
    pub nf_name: [u8; NAME_LEN],
    pub nf_type: [u8; NAME_LEN],
    pub host: [u8; NAME_LEN],
    pub reserved2: [u8; 256],
    // producer-owned
    pub head: AtomicU64,
    pub next_seq: AtomicU64,
    pub lost_full: AtomicU64,
    pub lost_too_big: AtomicU64,
    pub polls: AtomicU64,
    pub empty_polls: AtomicU64,
    pub reserved3: [u8; 80],
    // consumer-owned
    pub tail: AtomicU64,
    pub consumer_cookie: AtomicU64,
    pub consumer_stream: AtomicU32,
    pub consumer_pid: AtomicU32,
    pub lost_write: AtomicU64,
    pub lost_corrupt: AtomicU64,
    pub reserved4: [u8; 88],
    pub reserved5: [u8; 3328],
}

/// Mirror of `struct ms_rec_hdr`.
#[repr(C)]
pub struct RecHdr {
    pub len: u32,
    pub rtype: u16,
    pub flags: u16,
}

/// Mirror of `struct ms_batch_rec` (fixed part).
#[repr(C)]
pub struct BatchRec {
    pub h: RecHdr,
    pub seq: u64,
    pub tsc: u64,
    pub requested: u16,
    pub count: u16,
    pub reserved: u32,
}

/// Mirror of `struct ms_anchor_rec`.
#[repr(C)]
pub struct AnchorRec {
    pub h: RecHdr,
    pub seq: u64,
    pub tsc: u64,
    pub mono_ns: u64,
}

/// `(name, offset)` of every header field, in the order of the C header;
/// compared with the C side by the layout test.
pub const HEADER_FIELDS: &[(&str, usize)] = &[
    ("magic", offset_of!(RingHeader, magic)),
    ("version", offset_of!(RingHeader, version)),
    ("header_size", offset_of!(RingHeader, header_size)),
    ("data_size", offset_of!(RingHeader, data_size)),
    ("max_record_size", offset_of!(RingHeader, max_record_size)),
    ("flags", offset_of!(RingHeader, flags)),
    ("pid", offset_of!(RingHeader, pid)),
    ("role", offset_of!(RingHeader, role)),
    ("direction", offset_of!(RingHeader, direction)),
    ("port", offset_of!(RingHeader, port)),
    ("queue", offset_of!(RingHeader, queue)),
    ("created_ns", offset_of!(RingHeader, created_ns)),
    ("tsc_hz_hint", offset_of!(RingHeader, tsc_hz_hint)),
    ("nf_name", offset_of!(RingHeader, nf_name)),
    ("nf_type", offset_of!(RingHeader, nf_type)),
    ("host", offset_of!(RingHeader, host)),
    ("head", offset_of!(RingHeader, head)),
    ("next_seq", offset_of!(RingHeader, next_seq)),
    ("lost_full", offset_of!(RingHeader, lost_full)),
    ("lost_too_big", offset_of!(RingHeader, lost_too_big)),
    ("polls", offset_of!(RingHeader, polls)),
    ("empty_polls", offset_of!(RingHeader, empty_polls)),
    ("tail", offset_of!(RingHeader, tail)),
    ("consumer_cookie", offset_of!(RingHeader, consumer_cookie)),
    ("consumer_stream", offset_of!(RingHeader, consumer_stream)),
    ("consumer_pid", offset_of!(RingHeader, consumer_pid)),
    ("lost_write", offset_of!(RingHeader, lost_write)),
    ("lost_corrupt", offset_of!(RingHeader, lost_corrupt)),
    ("reserved5", offset_of!(RingHeader, reserved5)),
    ("sizeof_header", size_of::<RingHeader>()),
    ("sizeof_rec_hdr", size_of::<RecHdr>()),
    ("sizeof_batch_rec", size_of::<BatchRec>()),
    ("batch_seq", offset_of!(BatchRec, seq)),
    ("batch_tsc", offset_of!(BatchRec, tsc)),
    ("batch_requested", offset_of!(BatchRec, requested)),
    ("batch_count", offset_of!(BatchRec, count)),
    ("sizeof_anchor_rec", size_of::<AnchorRec>()),
    ("anchor_seq", offset_of!(AnchorRec, seq)),
    ("anchor_tsc", offset_of!(AnchorRec, tsc)),
    ("anchor_mono_ns", offset_of!(AnchorRec, mono_ns)),
];

/// `(name, value)` of every constant the C header defines, compared with
/// the C side by the layout test.
pub const CONSTANTS: &[(&str, u64)] = &[
    ("MS_RING_MAGIC", MAGIC),
    ("MS_RING_VERSION", VERSION as u64),
    ("MS_RING_HEADER_SIZE", HEADER_SIZE as u64),
    ("MS_RING_MIN_DATA_SIZE", MIN_DATA_SIZE),
    ("MS_RING_MIN_MAX_RECORD", MIN_MAX_RECORD as u64),
    ("MS_RING_MAX_MAX_RECORD", MAX_MAX_RECORD as u64),
    ("MS_RING_NAME_LEN", NAME_LEN as u64),
    ("MS_RING_F_CARRIES_TUPLES", RING_F_CARRIES_TUPLES as u64),
    ("MS_ROLE_SOURCE", ROLE_SOURCE as u64),
    ("MS_ROLE_NF", ROLE_NF as u64),
    ("MS_ROLE_SINK", ROLE_SINK as u64),
    ("MS_DIR_RX", DIR_RX as u64),
    ("MS_DIR_TX", DIR_TX as u64),
    ("MS_REC_BATCH", REC_BATCH as u64),
    ("MS_REC_ANCHOR", REC_ANCHOR as u64),
    ("MS_REC_PAD", REC_PAD as u64),
    ("MS_BATCH_F_NON_IPV4", BATCH_F_NON_IPV4 as u64),
    ("MS_BATCH_F_TUPLES", BATCH_F_TUPLES as u64),
    ("MS_TUPLE_LEN", crate::record::FiveTuple::WIRE_LEN as u64),
];

const _: () = assert!(size_of::<RingHeader>() == HEADER_SIZE);
const _: () = assert!(offset_of!(RingHeader, magic) == 0);
const _: () = assert!(offset_of!(RingHeader, version) == 8);
const _: () = assert!(offset_of!(RingHeader, header_size) == 12);
const _: () = assert!(offset_of!(RingHeader, data_size) == 16);
const _: () = assert!(offset_of!(RingHeader, max_record_size) == 24);
const _: () = assert!(offset_of!(RingHeader, flags) == 28);
const _: () = assert!(offset_of!(RingHeader, pid) == 32);
const _: () = assert!(offset_of!(RingHeader, role) == 36);
const _: () = assert!(offset_of!(RingHeader, direction) == 37);
const _: () = assert!(offset_of!(RingHeader, port) == 38);
const _: () = assert!(offset_of!(RingHeader, queue) == 40);
const _: () = assert!(offset_of!(RingHeader, created_ns) == 48);
const _: () = assert!(offset_of!(RingHeader, tsc_hz_hint) == 56);
const _: () = assert!(offset_of!(RingHeader, nf_name) == 64);
const _: () = assert!(offset_of!(RingHeader, nf_type) == 128);
const _: () = assert!(offset_of!(RingHeader, host) == 192);
const _: () = assert!(offset_of!(RingHeader, head) == 512);
const _: () = assert!(offset_of!(RingHeader, next_seq) == 520);
const _: () = assert!(offset_of!(RingHeader, lost_full) == 528);
const _: () = assert!(offset_of!(RingHeader, lost_too_big) == 536);
const _: () = assert!(offset_of!(RingHeader, polls) == 544);
const _: () = assert!(offset_of!(RingHeader, empty_polls) == 552);
const _: () = assert!(offset_of!(RingHeader, tail) == 640);
const _: () = assert!(offset_of!(RingHeader, consumer_cookie) == 648);
const _: () = assert!(offset_of!(RingHeader, consumer_stream) == 656);
const _: () = assert!(offset_of!(RingHeader, consumer_pid) == 660);
const _: () = assert!(offset_of!(RingHeader, lost_write) == 664);
const _: () = assert!(offset_of!(RingHeader, lost_corrupt) == 672);
const _: () = assert!(offset_of!(RingHeader, reserved5) == 768);
const _: () = assert!(size_of::<RecHdr>() == REC_HDR_SIZE);
const _: () = assert!(size_of::<BatchRec>() == BATCH_FIXED_SIZE);
const _: () = assert!(offset_of!(BatchRec, seq) == 8);
const _: () = assert!(offset_of!(BatchRec, tsc) == 16);
const _: () = assert!(offset_of!(BatchRec, requested) == 24);
const _: () = assert!(offset_of!(BatchRec, count) == 26);
const _: () = assert!(size_of::<AnchorRec>() == ANCHOR_SIZE);
const _: () = assert!(offset_of!(AnchorRec, seq) == 8);
const _: () = assert!(offset_of!(AnchorRec, tsc) == 16);
const _: () = assert!(offset_of!(AnchorRec, mono_ns) == 24);

/// Rounds up to a multiple of 8.
pub const fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// Exact length in bytes of a batch record with `count` packets and batch
/// `flags` (`ms_batch_len` in C).
pub const fn batch_len(count: u32, flags: u16) -> u64 {
    let mut len = BATCH_FIXED_SIZE as u64 + align8(count as u64 * 2);
    if flags & BATCH_F_NON_IPV4 != 0 {
        len += (count as u64).div_ceil(64) * 8;
    }
    if flags & BATCH_F_TUPLES != 0 {
        len += align8(count as u64 * 13);
    }
    len
}

/// Default `max_record_size` for a data area: a quarter of it, at most 64 KiB.
pub const fn default_max_record(data_size: u64) -> u32 {
    let m = if data_size / 4 > 65536 {
        65536
    } else {
        data_size / 4
    };
    (m & !7) as u32
}
