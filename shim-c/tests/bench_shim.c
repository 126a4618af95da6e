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
 * Usage: bench_shim [BURSTS_PER_ROUND] (default 200000) [live]: with `live`,
 * a consumer thread on CPU 0 drains the rings as the dumper does (reads each
 * new byte, releases it) while the hot path runs on CPU 1 — the cost of the
 * cache lines moving between the cores, which the in-place run omits.
 */
#include "../src/shim.c"
#include "mem_ring.h"

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
    ms_test_mem_ring(&s->ring, BENCH_RING, dir, "bench_shim");
    s->dir = dir;
    s->last_anchor_tsc = rte_rdtsc();
    s->publish_bytes = g_cfg.publish_bytes;
}

static int g_live_consumer;

/* The consumer: frees everything written so far (unless a live consumer
 * thread drains the rings). */
static inline void consume(struct ms_stream *s)
{
    if (g_live_consumer)
        return;
    atomic_store_explicit(&s->ring.hdr->tail,
                          atomic_load_explicit(&s->ring.hdr->head, memory_order_acquire),
                          memory_order_release);
}

/* Called through pointers, as DPDK calls them (rte_eth_rx_burst runs the
 * callback list, rte_eth_tx_burst the port's tx function): nothing is
 * specialized for the bench's constant burst size. */
static rte_rx_callback_fn volatile g_rx_cb = ms_rx_cb;
static volatile eth_tx_burst_t g_tx_fn;

__attribute__((noinline)) uint64_t bench_rx(struct ms_stream *s, uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++) {
        struct rte_mbuf **p = g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES;
        n += g_rx_cb(0, 0, p, BENCH_BURST, BENCH_BURST, s);
        if ((b & 1023u) == 1023u)
            consume(s);
    }
    return n;
}

__attribute__((noinline)) uint64_t bench_tx(struct ms_stream *s, uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++) {
        struct rte_mbuf **p = g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES;
        n += g_tx_fn(&g_dummy_txq, p, BENCH_BURST);
        if ((b & 1023u) == 1023u)
            consume(s);
    }
    return n;
}

__attribute__((noinline)) uint64_t bench_baseline(uint32_t bursts)
{
    uint64_t n = 0;
    uint32_t b;
    for (b = 0; b < bursts; b++)
        n += g_tx_fn(&g_dummy_txq, g_burst_ptrs + (b * BENCH_BURST) % BENCH_FRAMES, BENCH_BURST);
    return n;
}

/* A live consumer on another CPU, like the dumper: polls both rings' head,
 * reads every new byte (the dumper copies the records out) and releases
 * them. It makes the producer pay what a real one pays: the header line
 * (head, next_seq, polls) and the record lines move between the cores. */
static struct ms_stream *g_cons[2];
static volatile int g_cons_stop;
static volatile uint64_t g_cons_sum;

static void *live_consumer(void *arg)
{
    uint64_t sum = 0;
    (void)arg;
    while (!g_cons_stop) {
        int k;
        for (k = 0; k < 2; k++) {
            struct ms_ring *r = &g_cons[k]->ring;
            uint64_t h = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
            uint64_t t = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
            for (; t < h; t += 8) {
                uint64_t w;
                memcpy(&w, r->data + (t & r->mask), 8);
                sum += w;
            }
            atomic_store_explicit(&r->hdr->tail, h, memory_order_release);
        }
        rte_pause();
    }
    g_cons_sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    uint32_t bursts = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 200000u;
    pthread_t cons;
    struct ms_port *port = calloc(1, sizeof(*port));
    struct ms_stream *rx, *tx;
    uint64_t t0, t1, t2, t3, n_rx, n_tx, n_base;
    int round;
    g_live_consumer = argc > 2 && !strcmp(argv[2], "live");
    if (!port || bursts == 0 || (argc > 2 && !g_live_consumer)) {
        fprintf(stderr, "usage: bench_shim [BURSTS>0 [live]]\n");
        return 2;
    }
    build_frames();
    g_cfg.anchor_ticks = UINT64_MAX; /* no anchors: measure records only */
    g_cfg.quiet = 1;
    /* MICROSCOPE_PUBLISH_BYTES=0: head stored after every record (as before
     * publication was batched). */
    g_cfg.publish_bytes = getenv("MICROSCOPE_PUBLISH_BYTES")
                              ? (uint32_t)strtoul(getenv("MICROSCOPE_PUBLISH_BYTES"), NULL, 10)
                              : MS_DEFAULT_PUBLISH_BYTES;
    rx = &port->rx[0];
    tx = &port->tx[0];
    open_mem_stream(rx, MS_DIR_RX);
    open_mem_stream(tx, MS_DIR_TX);
    port->tx_orig = fake_driver_tx;
    port->nb_txq = 1;
    g_ports[0] = port;
    g_txq_data[0] = &g_dummy_txq;
    rte_eth_fp_ops[0].txq.data = g_txq_data;

    if (g_live_consumer) {
        cpu_set_t set;
        g_cons[0] = rx;
        g_cons[1] = tx;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        if (pthread_create(&cons, NULL, live_consumer, NULL) != 0) {
            fprintf(stderr, "bench_shim: cannot start the consumer thread\n");
            return 1;
        }
        pthread_setaffinity_np(cons, sizeof(set), &set);
        CPU_ZERO(&set);
        CPU_SET(1, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    printf("# shim hot path, %u bursts of %u 64-byte IPv4 packets per round, %s\n", bursts,
           BENCH_BURST,
           g_live_consumer ? "a live consumer on CPU 0 (producer on CPU 1)"
                           : "rings freed in place (no second core)");
    printf("# head published every %u bytes (MICROSCOPE_PUBLISH_BYTES)\n", g_cfg.publish_bytes);
    printf("round   rx cycles/pkt   tx cycles/pkt (added to a driver call)\n");
    for (round = 0; round < 3; round++) {
        t0 = rte_rdtsc();
        n_rx = bench_rx(rx, bursts);
        t1 = rte_rdtsc();
        g_tx_fn = ms_tx_tramps[0];
        n_tx = bench_tx(tx, bursts);
        t2 = rte_rdtsc();
        g_tx_fn = fake_driver_tx;
        n_base = bench_baseline(bursts);
        t3 = rte_rdtsc();
        printf("%5d %15.1f %15.1f", round, (double)(t1 - t0) / (double)n_rx,
               ((double)(t2 - t1) - (double)(t3 - t2)) / (double)n_tx);
        /* A live consumer descheduled by other jobs lets the rings fill:
         * those records are dropped and counted (cheaper than recording,
         * so such a round reads low), which only the in-place run forbids. */
        if (rx->ring.lost_full || tx->ring.lost_full)
            printf("   (%llu + %llu records dropped so far: ring full, consumer behind)",
                   (unsigned long long)rx->ring.lost_full,
                   (unsigned long long)tx->ring.lost_full);
        printf("\n");
        if (n_base != n_tx ||
            rx->packets + BENCH_BURST * rx->ring.lost_full != (uint64_t)(round + 1) * n_rx ||
            tx->packets + BENCH_BURST * tx->ring.lost_full != (uint64_t)(round + 1) * n_tx ||
            (!g_live_consumer && (rx->ring.lost_full || tx->ring.lost_full))) {
            fprintf(stderr, "bench_shim: records lost or miscounted\n");
            return 1;
        }
    }
    if (g_live_consumer) {
        g_cons_stop = 1;
        pthread_join(cons, NULL);
    }
    return 0;
}
