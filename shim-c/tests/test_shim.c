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

int main(void)
{
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
