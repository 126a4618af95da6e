/*
 * test_hotpath.c — the shim's hot path (rx callback, tx trampoline,
 * publication of held-back records) on fake mbufs and in-memory rings, no
 * EAL: the records it writes are decoded byte by byte and compared with what
 * the packets were. Includes src/shim.c (its hot path is static).
 */
#include "../src/shim.c"
#include "mem_ring.h"

static int failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            failures++;                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

#define NPKT 64u
#define RING (UINT64_C(1) << 16)

static struct rte_mbuf g_m[NPKT];
static uint8_t g_d[NPKT][128];
static struct rte_mbuf *g_p[NPKT];
static void *g_txq_data[1];
static int g_txq;
static uint16_t g_accept; /* how many packets the fake driver takes */

static uint16_t fake_tx(void *txq, struct rte_mbuf **pkts, uint16_t nb)
{
    (void)txq;
    (void)pkts;
    return nb < g_accept ? nb : g_accept;
}

/* Packet i: plain IPv4 with IPID 1000 + i, unless `kind` says otherwise. */
enum kind { K_IPV4, K_ARP, K_VLAN, K_OPTIONS, K_SHORT };

static void make_pkt(unsigned i, enum kind k)
{
    uint8_t *d = g_d[i];
    unsigned l3 = 14;
    uint16_t ipid = (uint16_t)(1000 + i);
    memset(d, 0, sizeof(g_d[i]));
    d[12] = 0x08;
    d[13] = 0x00;
    if (k == K_ARP)
        d[13] = 0x06;
    if (k == K_VLAN) {
        d[12] = 0x81;
        d[13] = 0x00;
        d[16] = 0x08;
        d[17] = 0x00;
        l3 = 18;
    }
    d[l3] = k == K_OPTIONS ? 0x46 : 0x45;
    d[l3 + 4] = (uint8_t)(ipid >> 8);
    d[l3 + 5] = (uint8_t)ipid;
    d[l3 + 9] = 17;
    g_m[i].buf_addr = d;
    g_m[i].data_off = 0;
    g_m[i].data_len = k == K_SHORT ? 30 : 64;
    g_m[i].pkt_len = g_m[i].data_len;
    g_p[i] = &g_m[i];
}

static void open_stream(struct ms_stream *s, uint8_t dir, uint16_t queue)
{
    uint8_t *mem = ms_test_mem_ring(&s->ring, RING, dir, "test_hotpath");
    /* Garbage in the data area: every byte a record owns must be written. */
    memset(mem + MS_RING_HEADER_SIZE, 0xAA, RING);
    s->dir = dir;
    s->queue = queue;
    s->port = 0;
    s->published = s->ring.head;
    s->publish_bytes = g_cfg.publish_bytes;
    s->last_anchor_tsc = rte_rdtsc();
}

static uint64_t pub_head(const struct ms_stream *s)
{
    return atomic_load_explicit(&s->ring.hdr->head, memory_order_acquire);
}

/* The batch record at byte `off` of the stream's data area. */
static const struct ms_batch_rec *rec_at(const struct ms_stream *s, uint64_t off)
{
    return (const struct ms_batch_rec *)(const void *)(s->ring.data + off);
}

static const uint16_t *rec_ipids(const struct ms_batch_rec *b)
{
    return (const uint16_t *)(const void *)((const uint8_t *)b + sizeof(*b));
}

static const uint64_t *rec_bitmap(const struct ms_batch_rec *b)
{
    return (const uint64_t *)(const void *)((const uint8_t *)b + sizeof(*b) +
                                            ms_align8((uint64_t)b->count * 2u));
}

/* Alignment padding after the IPIDs is zero. */
static int padding_zero(const struct ms_batch_rec *b)
{
    const uint8_t *q = (const uint8_t *)rec_ipids(b) + (size_t)b->count * 2u;
    const uint8_t *end = (const uint8_t *)rec_ipids(b) + ms_align8((uint64_t)b->count * 2u);
    for (; q < end; q++)
        if (*q)
            return 0;
    return 1;
}

static void test_rx_mixed_burst(struct ms_stream *rx)
{
    unsigned i;
    uint64_t off = rx->ring.head;
    const struct ms_batch_rec *b;
    for (i = 0; i < 41; i++)
        make_pkt(i, i == 5 ? K_ARP : i == 7 ? K_VLAN : i == 10 ? K_SHORT
                    : i == 40 ? K_OPTIONS : K_IPV4);
    CHECK(ms_rx_cb(0, 0, g_p, 41, 64, rx) == 41, "rx callback must pass the burst on");
    b = rec_at(rx, off);
    CHECK(b->h.type == MS_REC_BATCH, "type %u", b->h.type);
    CHECK(b->count == 41 && b->requested == 64, "count %u requested %u", b->count, b->requested);
    CHECK(b->h.flags == MS_BATCH_F_NON_IPV4, "flags %#x", b->h.flags);
    CHECK(b->h.len == ms_batch_len(41, MS_BATCH_F_NON_IPV4), "len %u", b->h.len);
    CHECK(b->reserved == 0, "reserved %u", b->reserved);
    for (i = 0; i < 41; i++) {
        uint16_t want = (i == 5 || i == 10) ? 0 : (uint16_t)(1000 + i);
        CHECK(rec_ipids(b)[i] == want, "packet %u: ipid %u, want %u", i, rec_ipids(b)[i], want);
    }
    CHECK(rec_bitmap(b)[0] == ((UINT64_C(1) << 5) | (UINT64_C(1) << 10)), "bitmap %#llx",
          (unsigned long long)rec_bitmap(b)[0]);
    CHECK(padding_zero(b), "padding after 41 ipids");
    CHECK(rx->ring.head == off + b->h.len, "one record committed");
}

static void test_rx_all_ipv4(struct ms_stream *rx)
{
    unsigned i;
    uint64_t off = rx->ring.head;
    const struct ms_batch_rec *b;
    for (i = 0; i < 3; i++)
        make_pkt(i, K_IPV4);
    ms_rx_cb(0, 0, g_p, 3, 32, rx);
    b = rec_at(rx, off);
    CHECK(b->count == 3 && b->h.flags == 0, "count %u flags %#x", b->count, b->h.flags);
    CHECK(b->h.len == ms_batch_len(3, 0), "no bitmap: len %u", b->h.len);
    CHECK(rec_ipids(b)[0] == 1000 && rec_ipids(b)[2] == 1002, "ipids");
    CHECK(padding_zero(b), "padding after 3 ipids");
}

static void test_tx_partial(struct ms_stream *tx)
{
    unsigned i;
    uint64_t off = tx->ring.head, seq = tx->ring.next_seq;
    const struct ms_batch_rec *b;
    for (i = 0; i < 10; i++)
        make_pkt(i, i == 8 ? K_ARP : K_IPV4);
    /* 6 of 10 accepted; the refused packet 8 is the only non-IPv4 one. */
    g_accept = 6;
    CHECK(ms_tx_tramps[0](&g_txq, g_p, 10) == 6, "the driver's count is returned");
    b = rec_at(tx, off);
    CHECK(b->count == 6 && b->requested == 10, "count %u requested %u", b->count, b->requested);
    CHECK(b->seq == seq, "seq %llu want %llu", (unsigned long long)b->seq,
          (unsigned long long)seq);
    CHECK(b->h.flags == MS_BATCH_F_NON_IPV4 && rec_bitmap(b)[0] == 0,
          "flags %#x bitmap %#llx (bits beyond the sent prefix cleared)", b->h.flags,
          (unsigned long long)rec_bitmap(b)[0]);
    CHECK(b->h.len == ms_batch_len(6, MS_BATCH_F_NON_IPV4), "len %u", b->h.len);
    CHECK(rec_ipids(b)[5] == 1005 && padding_zero(b), "ipids and padding");
    CHECK(b->tsc != 0, "timestamp taken after the driver call");

    /* All IPv4, 5 of 7 accepted: no bitmap. */
    off = tx->ring.head;
    for (i = 0; i < 7; i++)
        make_pkt(i, K_IPV4);
    g_accept = 5;
    ms_tx_tramps[0](&g_txq, g_p, 7);
    b = rec_at(tx, off);
    CHECK(b->count == 5 && b->h.flags == 0 && b->h.len == ms_batch_len(5, 0),
          "count %u flags %#x len %u", b->count, b->h.flags, b->h.len);
    CHECK(padding_zero(b), "padding after 5 ipids");

    /* Nothing accepted: no record, no sequence number used, no loss. */
    off = tx->ring.head;
    seq = tx->ring.next_seq;
    g_accept = 0;
    CHECK(ms_tx_tramps[0](&g_txq, g_p, 7) == 0, "nothing sent");
    CHECK(tx->ring.head == off && tx->ring.next_seq == seq && tx->ring.lost_full == 0,
          "a refused burst leaves no trace");

    /* Everything accepted, packet 2 VLAN-tagged IPv4: read through the tag. */
    off = tx->ring.head;
    make_pkt(2, K_VLAN);
    g_accept = 255;
    ms_tx_tramps[0](&g_txq, g_p, 7);
    b = rec_at(tx, off);
    CHECK(b->count == 7 && b->requested == 7 && b->h.flags == 0, "count %u flags %#x",
          b->count, b->h.flags);
    CHECK(rec_ipids(b)[2] == 1002, "VLAN ipid %u", rec_ipids(b)[2]);
}

/* The 5-tuple path (MICROSCOPE_TUPLE_PORTS): tuples follow the bitmap,
 * shrunk with the record. */
static void test_tx_tuples(struct ms_stream *tx)
{
    unsigned i;
    uint64_t off = tx->ring.head;
    const struct ms_batch_rec *b;
    const uint8_t *t;
    tx->tuples = 1;
    for (i = 0; i < 5; i++) {
        make_pkt(i, i == 4 ? K_ARP : K_IPV4);
        g_d[i][14 + 12] = 10; /* src 10.0.0.i, dst 192.168.0.1, ports 1000+i -> 53 */
        g_d[i][14 + 15] = (uint8_t)i;
        g_d[i][14 + 16] = 192;
        g_d[i][14 + 17] = 168;
        g_d[i][14 + 19] = 1;
        g_d[i][34] = (uint8_t)((1000 + i) >> 8);
        g_d[i][35] = (uint8_t)(1000 + i);
        g_d[i][37] = 53;
    }
    g_accept = 3; /* the refused packet 4 is the only non-IPv4 one */
    ms_tx_tramps[0](&g_txq, g_p, 5);
    b = rec_at(tx, off);
    CHECK(b->count == 3 && b->h.flags == (MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES),
          "count %u flags %#x", b->count, b->h.flags);
    CHECK(b->h.len == ms_batch_len(3, MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES), "len %u",
          b->h.len);
    CHECK(rec_bitmap(b)[0] == 0 && b->tsc != 0, "bitmap %#llx",
          (unsigned long long)rec_bitmap(b)[0]);
    t = (const uint8_t *)rec_bitmap(b) + 8;
    for (i = 0; i < 3; i++) {
        uint8_t want[MS_TUPLE_LEN];
        uint16_t ipid;
        CHECK(ms_parse_packet(g_d[i], 64, &ipid, want) == 1, "parse");
        CHECK(!memcmp(t + i * MS_TUPLE_LEN, want, MS_TUPLE_LEN), "tuple of packet %u", i);
    }
    /* All accepted, all IPv4: the bitmap goes, the tuples move down. */
    off = tx->ring.head;
    g_accept = 255;
    ms_tx_tramps[0](&g_txq, g_p, 4);
    b = rec_at(tx, off);
    CHECK(b->count == 4 && b->h.flags == MS_BATCH_F_TUPLES &&
              b->h.len == ms_batch_len(4, MS_BATCH_F_TUPLES),
          "count %u flags %#x len %u", b->count, b->h.flags, b->h.len);
    t = (const uint8_t *)rec_ipids(b) + ms_align8(4 * 2);
    {
        uint8_t want[MS_TUPLE_LEN];
        uint16_t ipid;
        ms_parse_packet(g_d[3], 64, &ipid, want);
        CHECK(!memcmp(t + 3 * MS_TUPLE_LEN, want, MS_TUPLE_LEN), "tuple of packet 3");
    }
    tx->tuples = 0;
}

/* Records are held back until publish_bytes accumulate, an empty rx poll of
 * the writer thread, or microscope_flush. */
static void test_publication(struct ms_stream *rx, struct ms_stream *tx)
{
    unsigned i, rounds = 0;
    uint64_t before;
    for (i = 0; i < 32; i++)
        make_pkt(i, K_IPV4);
    ms_rx_cb(0, 0, NULL, 0, 32, rx); /* idle: everything published */
    CHECK(pub_head(rx) == rx->ring.head && pub_head(tx) == tx->ring.head,
          "an empty poll publishes the thread's streams (rx %llu/%llu, tx %llu/%llu)",
          (unsigned long long)pub_head(rx), (unsigned long long)rx->ring.head,
          (unsigned long long)pub_head(tx), (unsigned long long)tx->ring.head);
    before = pub_head(rx);
    ms_rx_cb(0, 0, g_p, 32, 32, rx);
    g_accept = 255;
    ms_tx_tramps[0](&g_txq, g_p, 32);
    CHECK(pub_head(rx) == before && rx->ring.head > before, "a 96-byte record is held back");
    CHECK(atomic_load_explicit(&rx->ring.hdr->next_seq, memory_order_acquire) <=
              rx->ring.next_seq,
          "published next_seq never ahead");
    ms_rx_cb(0, 0, NULL, 0, 32, rx);
    CHECK(pub_head(rx) == rx->ring.head, "published on the next empty poll");
    CHECK(pub_head(tx) == tx->ring.head, "tx published by the same thread's empty rx poll");
    CHECK(atomic_load_explicit(&rx->ring.hdr->polls, memory_order_acquire) == rx->ring.polls,
          "poll counter published with head");

    /* Busy: published by itself once publish_bytes are held back. */
    before = pub_head(rx);
    while (pub_head(rx) == before && rounds < 1000) {
        ms_rx_cb(0, 0, g_p, 32, 32, rx);
        rounds++;
    }
    CHECK(pub_head(rx) == rx->ring.head &&
              rounds == (g_cfg.publish_bytes + ms_batch_len(32, 0) - 1) / ms_batch_len(32, 0),
          "published after %u bursts of %llu bytes (threshold %u)", rounds,
          (unsigned long long)ms_batch_len(32, 0), g_cfg.publish_bytes);

    /* microscope_flush(port): the control path publishes a stopped port. */
    ms_tx_tramps[0](&g_txq, g_p, 32);
    CHECK(pub_head(tx) != tx->ring.head, "held back");
    microscope_flush(0);
    CHECK(pub_head(tx) == tx->ring.head, "microscope_flush publishes");
    microscope_flush(1); /* another port: nothing to do, no crash */
}

int main(void)
{
    struct ms_port *port = calloc(1, sizeof(*port));
    struct ms_stream *rx, *tx;
    if (!port)
        return 1;
    g_inited = 1;
    g_cfg.quiet = 1;
    g_cfg.anchor_ticks = UINT64_MAX; /* no anchors: records only */
    g_cfg.publish_bytes = MS_DEFAULT_PUBLISH_BYTES;
    rx = &port->rx[0];
    tx = &port->tx[0];
    open_stream(rx, MS_DIR_RX, 0);
    open_stream(tx, MS_DIR_TX, 0);
    port->tx_orig = fake_tx;
    port->nb_txq = 1;
    g_ports[0] = port;
    g_txq_data[0] = &g_txq;
    rte_eth_fp_ops[0].txq.data = g_txq_data;

    test_rx_mixed_burst(rx);
    test_rx_all_ipv4(rx);
    test_tx_partial(tx);
    test_tx_tuples(tx);
    test_publication(rx, tx);
    if (failures) {
        fprintf(stderr, "test_hotpath: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_hotpath: all checks passed\n");
    return 0;
}
