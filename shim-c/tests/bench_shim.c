/*
 * bench_shim.c — the shim's per-packet cost, measured on its real hot path
 * (ms_rx_cb and the tx trampoline, included from src/shim.c) without EAL or
 * NICs: 64-byte IPv4/UDP frames in fake mbufs, a ring in memory whose tail a
 * fake consumer advances, and a fake driver tx function that accepts every
 * packet (and reads nothing, like net_null).
 *
 *   make -C shim-c bench            # cycles per packet (rdtsc; noisy under load)
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=bench_rx \
 *       --toggle-collect=bench_tx shim-c/build/bench_shim 2000
 *                                   # instructions per packet: repeatable
 *
 * Prints, for rx (one batch record per burst) and tx (IPIDs read before the
 * driver call, the accepted prefix recorded): cycles per packet, and the
 * instructions per packet a callgrind run of the same binary attributes to
 * bench_rx / bench_tx (each includes the loop's own few instructions).
 * Usage: bench_shim [BURSTS_PER_ROUND] (default 200000).
 */
#include "../src/shim.c"

#define BENCH_BURST 32u
#define BENCH_FRAMES 4096u
#define BENCH_RING (UINT64_C(1) << 22)

static struct rte_mbuf g_mbufs[BENCH_FRAMES];
static uint8_t g_data[BENCH_FRAMES][128] __rte_cache_aligned;
static struct rte_mbuf *g_burst_ptrs[BENCH_FRAMES];
static void *g_txq_data[1];
static int g_dummy_txq;

/* The driver: accepts everything, touches nothing. */
static uint16_t fake_driver_tx(void *txq, struct rte_mbuf **pkts, uint16_t nb)
{
    (void)txq;
    (void)pkts;
    return nb;
}

static void build_frames(void)
{
    uint32_t i;
    for (i = 0; i < BENCH_FRAMES; i++) {
        uint8_t *d = g_data[i];
        memset(d, 0, 64);
        d[12] = 0x08; /* IPv4 */
        d[13] = 0x00;
        d[14] = 0x45;
        d[16] = 0;
        d[17] = 50;
        d[18] = (uint8_t)(i >> 8); /* IPID */
        d[19] = (uint8_t)i;
        d[22] = 64;
        d[23] = 17; /* UDP */
        d[26] = 10;
        d[29] = (uint8_t)i;
        d[30] = 192;
        d[31] = 168;
        d[34] = 0x04;
        d[36] = 0x00;
        d[37] = 53;
        g_mbufs[i].buf_addr = d;
        g_mbufs[i].data_off = 0;
        g_mbufs[i].data_len = 64;
        g_mbufs[i].pkt_len = 64;
        g_burst_ptrs[i] = &g_mbufs[i];
    }
}

static void open_mem_stream(struct ms_stream *s, uint8_t dir)
{
    size_t len = MS_RING_HEADER_SIZE + BENCH_RING;
    void *mem = aligned_alloc(4096, len);
    struct ms_ring_identity id = {0};
    id.nf_name = "bench";
    id.nf_type = "bench";
    id.host = "bench";
    id.role = MS_ROLE_NF;
    id.direction = dir;
    if (!mem || ms_ring_format(mem, len, &id, 0) || ms_ring_attach(&s->ring, mem, len)) {
        fprintf(stderr, "bench_shim: cannot set up a ring\n");
        exit(1);
    }
    s->dir = dir;
    s->last_anchor_tsc = rte_rdtsc();
}

/* The consumer: frees everything written so far. */
static inline void consume(struct ms_stream *s)
{
    atomic_store_explicit(&s->ring.hdr->tail,
                          atomic_load_explicit(&s->ring.hdr->head, memory_order_acquire),
                          memory_order_release);
}

__attribute__((noinline)) uint64_t bench_rx(struct ms_stream *s, uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++) {
        struct rte_mbuf **p = g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES;
        n += ms_rx_cb(0, 0, p, BENCH_BURST, BENCH_BURST, s);
        if ((b & 1023u) == 1023u)
            consume(s);
    }
    return n;
}

__attribute__((noinline)) uint64_t bench_tx(struct ms_stream *s, eth_tx_burst_t tx, uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++) {
        struct rte_mbuf **p = g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES;
        n += tx(&g_dummy_txq, p, BENCH_BURST);
        if ((b & 1023u) == 1023u)
            consume(s);
    }
    return n;
}

__attribute__((noinline)) uint64_t bench_baseline(eth_tx_burst_t tx, uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++)
        n += tx(&g_dummy_txq, g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES, BENCH_BURST);
    return n;
}

int main(int argc, char **argv)
{
    uint32_t bursts = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 200000u;
    struct ms_port *port = calloc(1, sizeof(*port));
    struct ms_stream *rx, *tx;
    uint64_t t0, t1, t2, t3, n_rx, n_tx, n_base;
    int round;
    if (!port || bursts == 0) {
        fprintf(stderr, "usage: bench_shim [BURSTS>0]\n");
        return 2;
    }
    build_frames();
    g_cfg.anchor_ticks = UINT64_MAX; /* no anchors: measure records only */
    g_cfg.quiet = 1;
    rx = &port->rx[0];
    tx = &port->tx[0];
    open_mem_stream(rx, MS_DIR_RX);
    open_mem_stream(tx, MS_DIR_TX);
    port->tx_orig = fake_driver_tx;
    port->nb_txq = 1;
    g_ports[0] = port;
    g_txq_data[0] = &g_dummy_txq;
    rte_eth_fp_ops[0].txq.data = g_txq_data;

    printf("# shim hot path, %u bursts of %u 64-byte IPv4 packets per round\n", bursts,
           BENCH_BURST);
    printf("round   rx cycles/pkt   tx cycles/pkt (added to a driver call)\n");
    for (round = 0; round < 3; round++) {
        t0 = rte_rdtsc();
        n_rx = bench_rx(rx, bursts);
        t1 = rte_rdtsc();
        n_tx = bench_tx(tx, ms_tx_tramps[0], bursts);
        t2 = rte_rdtsc();
        n_base = bench_baseline(fake_driver_tx, bursts);
        t3 = rte_rdtsc();
        printf("%5d %15.1f %15.1f\n", round, (double)(t1 - t0) / (double)n_rx,
               ((double)(t2 - t1) - (double)(t3 - t2)) / (double)n_tx);
        if (n_base != n_tx || rx->packets != (uint64_t)(round + 1) * n_rx ||
            tx->packets != (uint64_t)(round + 1) * n_tx || rx->ring.lost_full ||
            tx->ring.lost_full) {
            fprintf(stderr, "bench_shim: records lost or miscounted\n");
            return 1;
        }
    }
    return 0;
}
