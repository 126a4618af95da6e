/*
 * test_shim.c — unit tests of the shim's packet parsing and configuration
 * parsing (no EAL, no ports: those are covered by scripts/test-dpdk with an
 * unmodified dpdk-testpmd). Run with `make -C shim-c test`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "microscope_ring.h"
#include "shim_internal.h"
#include "mem_ring.h"

static int failures;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);       \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

/* Ethernet + IPv4 + UDP/TCP frame with the given fields. Returns its length. */
static uint32_t frame(uint8_t *b, uint16_t ethertype, int vlan, uint16_t ipid, uint8_t proto,
                      uint16_t frag, uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp)
{
    uint32_t o = 12, l3;
    memset(b, 0, 128);
    if (vlan) {
        b[o++] = 0x81;
        b[o++] = 0x00;
        b[o++] = 0x00;
        b[o++] = 0x05;
    }
    b[o++] = (uint8_t)(ethertype >> 8);
    b[o++] = (uint8_t)ethertype;
    l3 = o;
    b[l3] = 0x45;
    b[l3 + 4] = (uint8_t)(ipid >> 8);
    b[l3 + 5] = (uint8_t)ipid;
    b[l3 + 6] = (uint8_t)(frag >> 8);
    b[l3 + 7] = (uint8_t)frag;
    b[l3 + 9] = proto;
    for (int i = 0; i < 4; i++) {
        b[l3 + 12 + i] = (uint8_t)(src >> (24 - 8 * i));
        b[l3 + 16 + i] = (uint8_t)(dst >> (24 - 8 * i));
    }
    b[l3 + 20] = (uint8_t)(sp >> 8);
    b[l3 + 21] = (uint8_t)sp;
    b[l3 + 22] = (uint8_t)(dp >> 8);
    b[l3 + 23] = (uint8_t)dp;
    return l3 + 28;
}

static void unpack(const uint8_t *t, uint32_t *src, uint32_t *dst, uint16_t *sp, uint16_t *dp,
                   uint8_t *proto)
{
    memcpy(src, t, 4);
    memcpy(dst, t + 4, 4);
    memcpy(sp, t + 8, 2);
    memcpy(dp, t + 10, 2);
    *proto = t[12];
}

static void test_ipv4_udp_tuple(void)
{
    uint8_t b[128], t[MS_TUPLE_LEN];
    uint16_t ipid = 0, sp, dp;
    uint32_t src, dst;
    uint8_t proto;
    uint32_t len = frame(b, 0x0800, 0, 0xBEEF, 17, 0, 0x0A000001, 0xC0A80102, 1234, 53);
    CHECK(ms_parse_packet(b, len, &ipid, t) == 1);
    CHECK(ipid == 0xBEEF);
    unpack(t, &src, &dst, &sp, &dp, &proto);
    CHECK(src == 0x0A000001);
    CHECK(dst == 0xC0A80102);
    CHECK(sp == 1234 && dp == 53 && proto == 17);
}

static void test_vlan_tagged(void)
{
    uint8_t b[128];
    uint16_t ipid = 0;
    uint32_t len = frame(b, 0x0800, 1, 777, 6, 0, 1, 2, 3, 4);
    CHECK(ms_parse_packet(b, len, &ipid, NULL) == 1);
    CHECK(ipid == 777);
}

static void test_non_ipv4_is_marked_not_misread(void)
{
    uint8_t b[128];
    uint16_t ipid = 0x5555;
    /* IPv6 ethertype with bytes where an IPID would be. */
    uint32_t len = frame(b, 0x86DD, 0, 0x1234, 17, 0, 1, 2, 3, 4);
    CHECK(ms_parse_packet(b, len, &ipid, NULL) == 0);
    CHECK(ipid == 0x5555); /* untouched */
    /* ARP. */
    len = frame(b, 0x0806, 0, 0x1234, 0, 0, 1, 2, 3, 4);
    CHECK(ms_parse_packet(b, len, &ipid, NULL) == 0);
    /* IPv4 ethertype but version nibble 6. */
    len = frame(b, 0x0800, 0, 0x1234, 17, 0, 1, 2, 3, 4);
    b[14] = 0x65;
    CHECK(ms_parse_packet(b, len, &ipid, NULL) == 0);
    /* All-zero frame (what net_null emits). */
    memset(b, 0, sizeof(b));
    CHECK(ms_parse_packet(b, 64, &ipid, NULL) == 0);
}

static void test_truncated(void)
{
    uint8_t b[128];
    uint16_t ipid = 0;
    uint8_t t[MS_TUPLE_LEN];
    uint32_t len = frame(b, 0x0800, 0, 99, 17, 0, 1, 2, 3, 4);
    CHECK(ms_parse_packet(b, 14 + 19, &ipid, NULL) == 0); /* IPv4 header cut */
    CHECK(ms_parse_packet(b, 13, &ipid, NULL) == 0);
    /* IPv4 header complete, UDP ports cut: IPID yes, ports zero. */
    CHECK(ms_parse_packet(b, 14 + 20 + 2, &ipid, t) == 1);
    CHECK(ipid == 99);
    CHECK(t[8] == 0 && t[9] == 0 && t[10] == 0 && t[11] == 0 && t[12] == 17);
    (void)len;
}

static void test_fragment_has_no_ports(void)
{
    uint8_t b[128], t[MS_TUPLE_LEN];
    uint16_t ipid = 0, sp, dp;
    uint32_t src, dst;
    uint8_t proto;
    uint32_t len = frame(b, 0x0800, 0, 5, 17, 0x0010 /* offset 16*8 */, 1, 2, 1111, 2222);
    CHECK(ms_parse_packet(b, len, &ipid, t) == 1);
    unpack(t, &src, &dst, &sp, &dp, &proto);
    CHECK(sp == 0 && dp == 0 && proto == 17);
    /* More-fragments flag on the first fragment: ports are there. */
    len = frame(b, 0x0800, 0, 5, 17, 0x2000, 1, 2, 1111, 2222);
    CHECK(ms_parse_packet(b, len, &ipid, t) == 1);
    unpack(t, &src, &dst, &sp, &dp, &proto);
    CHECK(sp == 1111 && dp == 2222);
}

static void test_ports_syntax(void)
{
    CHECK(ms_parse_ports(NULL) == 0);
    CHECK(ms_parse_ports("") == 0);
    CHECK(ms_parse_ports("none") == 0);
    CHECK(ms_parse_ports("all") == ~UINT64_C(0));
    CHECK(ms_parse_ports("0") == 1);
    CHECK(ms_parse_ports("0,2, 5") == (1u | 4u | 32u));
    fprintf(stderr, "test_shim: the next two warnings are expected:\n");
    CHECK(ms_parse_ports("1,x,3") == (2u | 8u)); /* bad token skipped, reported */
    CHECK(ms_parse_ports("64") == 0);           /* out of range */
}

/* A ring in memory for the record-level tests. */
static void *mem_ring(struct ms_ring *r, size_t data_size)
{
    return ms_test_mem_ring(r, data_size, MS_DIR_RX, "test_shim");
}

/* The tx wrapper's record handling: a batch reserved for n packets, shrunk
 * to the accepted prefix (with and without its bitmap), is byte for byte
 * the record ms_ring_put_batch writes for that prefix; a cancelled
 * reservation leaves no sequence gap and nothing published. */
static void test_shrink_and_cancel(void)
{
    struct ms_ring a, b;
    struct ms_batch_slots sl;
    uint16_t ipids[5] = {10, 11, 12, 13, 14};
    uint64_t bits[1] = {UINT64_C(1) << 1 | UINT64_C(1) << 4};
    uint8_t tuples[5 * MS_TUPLE_LEN];
    uint32_t flags = MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES;
    unsigned i;
    void *ma = mem_ring(&a, 1 << 16), *mb = mem_ring(&b, 1 << 16);
    for (i = 0; i < sizeof(tuples); i++)
        tuples[i] = (uint8_t)(i * 7 + 1);
    /* shrink 5 -> 3, keeping bitmap and tuples */
    CHECK(ms_ring_reserve_batch(&a, 99, 5, 5, flags, &sl) == MS_RING_OK);
    memcpy(sl.ipids, ipids, sizeof(ipids));
    sl.non_ipv4[0] = bits[0];
    memcpy(sl.tuples, tuples, sizeof(tuples));
    ms_ring_shrink_batch(&a, &sl, 5, 3, flags, flags);
    ms_ring_commit(&a);
    CHECK(ms_ring_put_batch(&b, 99, 5, 3, ipids, bits, tuples) == MS_RING_OK);
    CHECK(a.head == b.head && a.head == ms_batch_len(3, flags));
    CHECK(memcmp(a.data, b.data, a.head) == 0);
    /* a cancelled reservation: no gap, nothing published */
    CHECK(ms_ring_reserve_batch(&a, 100, 4, 4, flags, &sl) == MS_RING_OK);
    ms_ring_cancel(&a);
    CHECK(a.next_seq == b.next_seq && a.head == b.head);
    /* shrink 5 -> 5 dropping an all-zero bitmap, no tuples */
    CHECK(ms_ring_reserve_batch(&a, 101, 5, 5, MS_BATCH_F_NON_IPV4, &sl) == MS_RING_OK);
    memcpy(sl.ipids, ipids, sizeof(ipids));
    ms_ring_shrink_batch(&a, &sl, 5, 5, MS_BATCH_F_NON_IPV4, 0);
    ms_ring_commit(&a);
    CHECK(ms_ring_put_batch(&b, 101, 5, 5, ipids, NULL, NULL) == MS_RING_OK);
    CHECK(a.head == b.head && a.next_seq == b.next_seq);
    CHECK(memcmp(a.data, b.data, a.head) == 0);
    CHECK(a.lost_full == 0 && a.lost_too_big == 0);
    /* a quiet reservation that fails counts nothing */
    {
        uint64_t seq;
        int cause;
        CHECK(ms_ring_reserve_quiet(&a, 1u << 20, &seq, &cause) == NULL);
        CHECK(cause == MS_RING_LOST_TOO_BIG && a.lost_too_big == 0 && a.next_seq == seq);
    }
    free(ma);
    free(mb);
}

int main(void)
{
    test_shrink_and_cancel();
    test_ipv4_udp_tuple();
    test_vlan_tagged();
    test_non_ipv4_is_marked_not_misread();
    test_truncated();
    test_fragment_has_no_ports();
    test_ports_syntax();
    if (failures) {
        fprintf(stderr, "test_shim: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_shim: all checks passed\n");
    return 0;
}
