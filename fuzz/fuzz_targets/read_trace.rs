//! Fuzz the trace reader: any bytes, both modes, plus the streaming reader.
//! It must never panic, and what it accepts must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracefile::{read_trace_bytes, ReadMode, TraceReader};

fuzz_target!(|data: &[u8]| {
    let strict = read_trace_bytes(data, ReadMode::Strict);
    let salvage = read_trace_bytes(data, ReadMode::Salvage);
    if let Ok(t) = &strict {
        // Whatever strict accepts, salvage accepts identically.
        assert_eq!(salvage.as_ref().ok(), Some(t));
        for s in &t.streams {
            assert!(s.batches.windows(2).all(|w| w[0].seq < w[1].seq));
            for b in &s.batches {
                assert!(b.non_ipv4.iter().all(|&i| (i as usize) < b.ipids.len()));
                assert!(b.tuples.as_ref().is_none_or(|t| t.len() == b.ipids.len()));
            }
        }
    }
    if let Ok(mut r) = TraceReader::new(data, "fuzz", ReadMode::Salvage) {
        let mut end = 0;
        while let Ok(Some(c)) = r.next_chunk() {
            assert!(c.offset >= end, "chunks overlap");
            end = c.offset + c.len;
            assert!(end <= data.len() as u64);
        }
    }
});
