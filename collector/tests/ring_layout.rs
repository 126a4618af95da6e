//! The C header and the Rust mirror agree on every size, offset and constant
//! (build.rs compiles the header, which also runs its `_Static_assert`s).

#[cfg(ms_ring_c)]
mod with_c {
    use collector::ring::c_producer::{c_batch_len, c_constants, c_layout, c_tuple_pack};
    use collector::ring::layout::{self, HEADER_FIELDS};
    use collector::FiveTuple;

    #[test]
    fn every_field_offset_and_size_matches_the_c_header() {
        let c = c_layout();
        assert_eq!(c.len(), HEADER_FIELDS.len(), "C table {c:?}");
        for ((cn, cv), (rn, rv)) in c.iter().zip(HEADER_FIELDS) {
            assert_eq!(cn, rn, "field order differs");
            assert_eq!(cv, rv, "{cn}: C says {cv}, Rust says {rv}");
        }
    }

    #[test]
    fn every_constant_matches_the_c_header() {
        let c = collector::ring::c_producer::c_constant_table();
        assert_eq!(c.len(), layout::CONSTANTS.len(), "C table {c:?}");
        for ((cn, cv), (rn, rv)) in c.iter().zip(layout::CONSTANTS) {
            assert_eq!(cn, rn, "constant order differs");
            assert_eq!(cv, rv, "{cn}: C says {cv}, Rust says {rv}");
        }
    }

    #[test]
    fn constants_match() {
        assert_eq!(c_constants(), (layout::MAGIC, layout::VERSION));
        assert_eq!(&layout::MAGIC.to_le_bytes(), b"MSCRING1");
    }

    #[test]
    fn batch_lengths_match_for_every_flag_combination() {
        for count in [
            0u32, 1, 2, 3, 4, 5, 31, 32, 63, 64, 65, 127, 128, 512, 65535,
        ] {
            for flags in 0..=3u16 {
                assert_eq!(
                    c_batch_len(count, flags as u32),
                    layout::batch_len(count, flags),
                    "count {count} flags {flags}"
                );
            }
        }
    }

    #[test]
    fn tuple_packing_matches_five_tuple_wire_form() {
        let t = FiveTuple {
            src_ip: 0x0a00_0001,
            dst_ip: 0xc0a8_0102,
            src_port: 1234,
            dst_port: 80,
            proto: 6,
        };
        assert_eq!(c_tuple_pack(&t), t.to_bytes());
    }
}

#[cfg(ms_ring_no_c)]
#[test]
fn c_compiler_required_for_the_layout_check() {
    panic!("collector/build.rs found no working C compiler: microscope_ring.h could not be checked against the Rust mirror");
}
