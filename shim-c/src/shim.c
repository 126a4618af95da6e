/*
 * shim.c — Microscope's DPDK hook points (the part shared by the LD_PRELOAD
 * library and the static library).
 *
 * Per started port, per queue, one stream = one shared-memory ring
 * (microscope_ring.h) created under MICROSCOPE_RING_DIR:
 *   rx: an ethdev rx callback. It fires on every poll; empty polls only bump
 *       the poll counters. A non-empty burst becomes one batch record: one
 *       rte_rdtsc(), the requested burst size (max_pkts), the batch size and
 *       each packet's IPv4 identification (non-IPv4 packets flagged in the
 *       record's bitmap, their IPID 0, never misread from other headers).
 *   tx: the port's fast-path tx function (rte_eth_fp_ops[port].tx_pkt_burst)
 *       is replaced by a per-port trampoline that reads the IPIDs *before*
 *       calling the driver (which may free the mbufs), calls it, and records
 *       only the prefix the driver accepted. Starting a port resets that table,
 *       so the wrapper is re-applied on every attach. Fallback
 *       (MICROSCOPE_TX_HOOK=callback, or a DPDK runtime other than the one
 *       compiled against): an ethdev tx callback, which runs before the driver
 *       and so records what the application *offered*, including packets the
 *       driver then refuses under backpressure.
 *
 * Per burst: one ring reservation, one rdtsc, the IPIDs read straight into
 * the record (one 4-byte check per packet, the full parser only for VLAN
 * tags, IP options and non-IPv4), the record's fixed part written once.
 * Committed records are published (head stored in the ring's shared
 * header, which the dumper polls from another core) once
 * MICROSCOPE_PUBLISH_BYTES accumulated, at anchors, on idle rx polls of the
 * writing thread and at microscope_flush/shutdown, not after every burst:
 * see "Publication" below.
 *
 * Hot-path rules: no lock, no allocation, no blocking, no system call (the
 * optional MICROSCOPE_YIELD knob is the one documented exception:
 * sched_yield() after N empty polls or on tx backpressure). A full ring drops
 * the record and counts it (lost_full); an oversized one likewise
 * (lost_too_big). Clock anchors (TSC, CLOCK_MONOTONIC via the vDSO) are
 * written on each stream when it opens, then at most every
 * MICROSCOPE_ANCHOR_US (10 ms) — checked on every recorded burst, and every
 * 1024 empty polls while idle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_version.h>

#include "microscope_ring.h"
#include "microscope_shim.h"
#include "shim_internal.h"

#define MS_MAX_PORTS RTE_MAX_ETHPORTS
#define MS_TX_CHUNK 256u
#define MS_DEFAULT_RING_SIZE (UINT64_C(1) << 23) /* 8 MiB data area */
#define MS_IDLE_ANCHOR_MASK 1023u
#define MS_DEFAULT_PUBLISH_BYTES 4096u
#define MS_DIRTY_MAX 16u

enum ms_tx_mode { MS_TX_WRAP = 0, MS_TX_CALLBACK = 1 };

struct ms_stream {
    struct ms_ring ring; /* producer handle; ring.hdr NULL when not open */
    uint64_t last_anchor_tsc;
    uint64_t batches;
    uint64_t packets;
    uint64_t anchors;
    uint64_t published;     /* ring.head as last stored in the shared header */
    uint32_t publish_bytes; /* store head once this much is held back */
    uint32_t empty_run;
    uint16_t port;
    uint16_t queue;
    uint8_t dir;
    uint8_t tuples;
    uint8_t dirty;          /* in its writer thread's ms_dirty list */
    const void *cb; /* rte_eth_rxtx_callback handle */
} __rte_cache_aligned;

struct ms_port {
    struct ms_stream rx[MICROSCOPE_MAX_QUEUES];
    struct ms_stream tx[MICROSCOPE_MAX_QUEUES];
    eth_tx_burst_t tx_orig; /* the driver's tx function, read by the trampoline */
    uint16_t nb_rxq;
    uint16_t nb_txq;        /* queues the trampoline searches */
};

struct ms_config {
    char ring_dir[PATH_MAX];
    char nf_name[MS_RING_NAME_LEN];
    char nf_type[MS_RING_NAME_LEN];
    char host[MS_RING_NAME_LEN];
    uint8_t role;
    uint64_t tuple_ports; /* bit p: port p carries 5-tuples */
    uint32_t yield_after; /* 0: never yield */
    uint64_t ring_size;
    int tx_mode;
    int disabled;
    int quiet;
    uint64_t anchor_ticks;
    uint32_t publish_bytes;
};

static struct ms_config g_cfg;
static struct ms_port *g_ports[MS_MAX_PORTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_inited;

/* ---------------------------------------------------------------- config */

static void ms_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ms_log(const char *fmt, ...)
{
    va_list ap;
    if (g_cfg.quiet)
        return;
    va_start(ap, fmt);
    fputs("microscope-shim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void ms_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Parses "0,1,3", "all" or "none"/"" into a port bitmask. Unknown tokens are
 * reported and ignored. */
uint64_t ms_parse_ports(const char *s)
{
    uint64_t mask = 0;
    const char *p = s;
    if (!s || !*s || !strcmp(s, "none"))
        return 0;
    if (!strcmp(s, "all"))
        return ~UINT64_C(0);
    while (*p) {
        char *end;
        unsigned long v;
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        errno = 0;
        v = strtoul(p, &end, 10);
        if (end == p || errno || v >= 64) {
            fprintf(stderr, "microscope-shim: MICROSCOPE_TUPLE_PORTS: ignoring bad port "
                            "at \"%s\" (expected numbers 0-63, comma-separated, or all)\n", p);
            while (*p && *p != ',')
                p++;
            continue;
        }
        mask |= UINT64_C(1) << v;
        p = end;
    }
    return mask;
}

static void ms_process_name(char *out, size_t cap)
{
    char buf[256];
    FILE *f = fopen("/proc/self/comm", "r");
    if (f && fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\n")] = 0;
        ms_copy(out, cap, buf);
    } else {
        ms_copy(out, cap, "dpdk-nf");
    }
    if (f)
        fclose(f);
}

static int ms_mkdirs(const char *dir)
{
    char tmp[PATH_MAX];
    size_t i, n = strlen(dir);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -errno;
            tmp[i] = c;
        }
    }
    return 0;
}

static void ms_init_locked(void)
{
    const char *v;
    char comm[MS_RING_NAME_LEN];
    if (g_inited)
        return;
    g_inited = 1;
    memset(&g_cfg, 0, sizeof(g_cfg));
    g_cfg.quiet = (v = getenv("MICROSCOPE_QUIET")) && *v && strcmp(v, "0");
    g_cfg.disabled = (v = getenv("MICROSCOPE_DISABLE")) && *v && strcmp(v, "0");

    v = getenv("MICROSCOPE_RING_DIR");
    if (v && *v) {
        ms_copy(g_cfg.ring_dir, sizeof(g_cfg.ring_dir), v);
    } else {
        snprintf(g_cfg.ring_dir, sizeof(g_cfg.ring_dir), "/dev/shm/microscope-%u",
                 (unsigned)getuid());
    }
    ms_process_name(comm, sizeof(comm));
    v = getenv("MICROSCOPE_NF_TYPE");
    ms_copy(g_cfg.nf_type, sizeof(g_cfg.nf_type), v && *v ? v : comm);
    v = getenv("MICROSCOPE_NF_NAME");
    if (v && *v)
        ms_copy(g_cfg.nf_name, sizeof(g_cfg.nf_name), v);
    else
        snprintf(g_cfg.nf_name, sizeof(g_cfg.nf_name), "%.40s-%ld", comm, (long)getpid());
    g_cfg.role = MS_ROLE_NF;
    v = getenv("MICROSCOPE_NF_ROLE");
    if (v && *v) {
        if (!strcmp(v, "source"))
            g_cfg.role = MS_ROLE_SOURCE;
        else if (!strcmp(v, "sink"))
            g_cfg.role = MS_ROLE_SINK;
        else if (strcmp(v, "nf"))
            fprintf(stderr, "microscope-shim: MICROSCOPE_NF_ROLE=\"%s\": expected source, nf "
                            "or sink; using nf\n", v);
    }
    if (gethostname(g_cfg.host, sizeof(g_cfg.host)) != 0)
        ms_copy(g_cfg.host, sizeof(g_cfg.host), "localhost");
    g_cfg.host[sizeof(g_cfg.host) - 1] = 0;
    g_cfg.tuple_ports = ms_parse_ports(getenv("MICROSCOPE_TUPLE_PORTS"));
    v = getenv("MICROSCOPE_YIELD");
    if (v && *v) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || n > UINT32_MAX)
            fprintf(stderr, "microscope-shim: MICROSCOPE_YIELD=\"%s\": expected a count of "
                            "empty polls (0 = off); yielding disabled\n", v);
        else
            g_cfg.yield_after = (uint32_t)n;
    }
    g_cfg.ring_size = MS_DEFAULT_RING_SIZE;
    v = getenv("MICROSCOPE_RING_SIZE");
    if (v && *v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 0);
        if (*end || !ms_is_pow2(n) || n < MS_RING_MIN_DATA_SIZE || n > (UINT64_C(1) << 32))
            fprintf(stderr, "microscope-shim: MICROSCOPE_RING_SIZE=\"%s\": expected a power "
                            "of two between 4096 and 2^32 bytes; using %llu\n", v,
                    (unsigned long long)MS_DEFAULT_RING_SIZE);
        else
            g_cfg.ring_size = n;
    }
    g_cfg.publish_bytes = MS_DEFAULT_PUBLISH_BYTES;
    v = getenv("MICROSCOPE_PUBLISH_BYTES");
    if (v && *v) {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || n > MS_RING_MAX_MAX_RECORD)
            fprintf(stderr, "microscope-shim: MICROSCOPE_PUBLISH_BYTES=\"%s\": expected bytes "
                            "between 0 (publish every record) and %u; using %u\n", v,
                    MS_RING_MAX_MAX_RECORD, MS_DEFAULT_PUBLISH_BYTES);
        else
            g_cfg.publish_bytes = (uint32_t)n;
    }
    g_cfg.tx_mode = MS_TX_WRAP;
    v = getenv("MICROSCOPE_TX_HOOK");
    if (v && !strcmp(v, "callback"))
        g_cfg.tx_mode = MS_TX_CALLBACK;
    else if (v && *v && strcmp(v, "wrap"))
        fprintf(stderr, "microscope-shim: MICROSCOPE_TX_HOOK=\"%s\": expected wrap or callback; "
                        "using wrap\n", v);
    /* The tx wrapper writes into rte_eth_fp_ops, whose layout is internal to
     * one DPDK release: only do it on the release we were compiled against. */
    if (g_cfg.tx_mode == MS_TX_WRAP) {
        char want[32];
        snprintf(want, sizeof(want), "DPDK %d.%02d", RTE_VER_YEAR, RTE_VER_MONTH);
        if (strncmp(rte_version(), want, strlen(want)) != 0) {
            fprintf(stderr, "microscope-shim: runtime is \"%s\", compiled against \"%s\": "
                            "using the tx callback fallback (records offered, not sent)\n",
                    rte_version(), want);
            g_cfg.tx_mode = MS_TX_CALLBACK;
        }
    }
    {
        unsigned long long us = 10000; /* 10 ms */
        v = getenv("MICROSCOPE_ANCHOR_US");
        if (v && *v) {
            char *end;
            unsigned long long n = strtoull(v, &end, 10);
            if (*end || n == 0 || n > 60000000ull)
                fprintf(stderr, "microscope-shim: MICROSCOPE_ANCHOR_US=\"%s\": expected "
                                "microseconds between 1 and 60000000; using %llu\n", v, us);
            else
                us = n;
        }
        g_cfg.anchor_ticks = rte_get_tsc_hz() / 1000000u * us;
        if (g_cfg.anchor_ticks == 0)
            g_cfg.anchor_ticks = 1000u * us;
    }

    if (g_cfg.disabled) {
        ms_log("MICROSCOPE_DISABLE is set: not recording");
        return;
    }
    if (ms_mkdirs(g_cfg.ring_dir) != 0) {
        fprintf(stderr, "microscope-shim: cannot create %s: %s; not recording\n", g_cfg.ring_dir,
                strerror(errno));
        g_cfg.disabled = 1;
        return;
    }
    {
        /* A ring on a disk-backed file system pays a page fault per page
         * after each writeback of the mapping: orders of magnitude slower. */
        struct statfs sf;
        if (statfs(g_cfg.ring_dir, &sf) == 0 && sf.f_type != 0x01021994 /* TMPFS_MAGIC */)
            fprintf(stderr, "microscope-shim: warning: %s is not on tmpfs; writeback of the "
                            "mapped rings will slow the NF down (use a directory under "
                            "/dev/shm)\n", g_cfg.ring_dir);
    }
    ms_log("recording NF \"%s\" (type \"%s\") into rings under %s "
           "(MICROSCOPE_RING_DIR; drain with: microscope dump --rings %s --out trace.bin)",
           g_cfg.nf_name, g_cfg.nf_type, g_cfg.ring_dir, g_cfg.ring_dir);
}

/* ------------------------------------------------------------- hot path */

static inline uint64_t ms_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Publication. The shared header's producer line (head, next_seq, polls,
 * empty_polls) is read by the dumper on another core: storing it on every
 * burst moves that line (and the record's partly written data line) between
 * the cores each time, which doubled the hot path's cost per packet
 * (bench_shim live). So a stream holds committed records back — written,
 * invisible — and stores head only once publish_bytes
 * (MICROSCOPE_PUBLISH_BYTES, 4 KiB) have accumulated, with every anchor
 * (at most MICROSCOPE_ANCHOR_US apart while the stream records), on an
 * empty rx poll of its writer thread (the thread's held-back streams, rx
 * and tx, are in its ms_dirty list), at microscope_flush/rte_eth_dev_stop
 * and at microscope_shutdown. Only the writer thread publishes while the
 * queue is polled (single producer). */
static __thread struct ms_stream *ms_dirty[MS_DIRTY_MAX]
    __attribute__((tls_model("initial-exec")));
static __thread unsigned ms_ndirty __attribute__((tls_model("initial-exec")));

static inline void ms_publish(struct ms_stream *s)
{
    struct ms_ring *r = &s->ring;
    atomic_store_explicit(&r->hdr->polls, r->polls, memory_order_release);
    atomic_store_explicit(&r->hdr->empty_polls, r->empty_polls, memory_order_release);
    atomic_store_explicit(&r->hdr->next_seq, r->next_seq, memory_order_release);
    atomic_store_explicit(&r->hdr->head, r->head, memory_order_release);
    s->published = r->head;
}

/* Publishes every stream this thread holds back. */
static __attribute__((noinline)) void ms_flush_dirty(void)
{
    unsigned i, n = ms_ndirty;
    for (i = 0; i < n; i++) {
        struct ms_stream *s = ms_dirty[i];
        s->dirty = 0;
        if (s->ring.head != s->published)
            ms_publish(s);
    }
    ms_ndirty = 0;
}

/* A stream now holds records back: remember it for this thread's next
 * empty rx poll (or publish now when the list is full). */
static __attribute__((noinline)) void ms_mark_dirty(struct ms_stream *s)
{
    if (ms_ndirty < MS_DIRTY_MAX) {
        ms_dirty[ms_ndirty++] = s;
        s->dirty = 1;
    } else {
        ms_publish(s);
    }
}

/* Commits the record reserved last; publishes when enough is held back. */
static inline __attribute__((always_inline)) void ms_commit(struct ms_stream *s)
{
    struct ms_ring *r = &s->ring;
    r->head += r->pending_len;
    r->pending_len = 0;
    if (r->head - s->published >= s->publish_bytes)
        ms_publish(s);
    else if (unlikely(!s->dirty))
        ms_mark_dirty(s);
}

static inline void ms_anchor_now(struct ms_stream *s)
{
    uint64_t t0 = rte_rdtsc();
    uint64_t ns = ms_mono_ns();
    uint64_t t1 = rte_rdtsc();
    uint64_t tsc = t0 + (t1 - t0) / 2u;
    s->last_anchor_tsc = tsc;
    if (ms_ring_put_anchor(&s->ring, tsc, ns) == MS_RING_OK)
        __atomic_store_n(&s->anchors, s->anchors + 1, __ATOMIC_RELAXED);
    ms_publish(s); /* the anchor and every record held back before it */
}

static inline void ms_maybe_anchor(struct ms_stream *s, uint64_t tsc)
{
    if (tsc - s->last_anchor_tsc >= g_cfg.anchor_ticks)
        ms_anchor_now(s);
}

int ms_parse_packet(const uint8_t *d, uint32_t len, uint16_t *ipid, uint8_t *tuple)
{
    uint32_t l3 = 14, ihl, l4;
    uint16_t et;
    const uint8_t *ip;
    if (len < 14)
        return 0;
    et = (uint16_t)(d[12] << 8 | d[13]);
    while ((et == 0x8100 || et == 0x88a8) && len >= l3 + 4) {
        et = (uint16_t)(d[l3 + 2] << 8 | d[l3 + 3]);
        l3 += 4;
    }
    if (et != 0x0800 || len < l3 + 20)
        return 0;
    ip = d + l3;
    ihl = (uint32_t)(ip[0] & 0x0f) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < 20)
        return 0;
    *ipid = (uint16_t)(ip[4] << 8 | ip[5]);
    if (tuple) {
        uint32_t src = (uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15];
        uint32_t dst = (uint32_t)ip[16] << 24 | (uint32_t)ip[17] << 16 | (uint32_t)ip[18] << 8 | ip[19];
        uint16_t sp = 0, dp = 0;
        uint8_t proto = ip[9];
        int first_frag = ((ip[6] & 0x1f) | ip[7]) == 0;
        l4 = l3 + ihl;
        if (first_frag && (proto == 6 || proto == 17 || proto == 132) && len >= l4 + 4) {
            sp = (uint16_t)(d[l4] << 8 | d[l4 + 1]);
            dp = (uint16_t)(d[l4 + 2] << 8 | d[l4 + 3]);
        }
        ms_tuple_pack(tuple, src, dst, sp, dp, proto);
    }
    return 1;
}

/* Packets ahead whose first data line is prefetched while parsing: an
 * application that never touches packet data (an io forwarder) would
 * otherwise pay one full cache miss per packet, serialized. */
#define MS_PREFETCH 8u



/* True for an untagged IPv4 frame without options of at least 34 bytes, the
 * common case: bytes 12..14 (ethertype 0x0800, version 4, IHL 5) are
 * checked with one load and one compare against a constant in memory order.
 * Anything else (VLAN tags, IP options, other ethertypes, short frames) goes
 * to ms_parse_packet. */
#define MS_FAST_MASK RTE_BE32(0xffffff00u)
#define MS_FAST_WANT RTE_BE32(0x08004500u)

/* The slow path for one packet without tuples: full parse (VLAN tags,
 * options); a non-IPv4 packet is recorded as 0, flagged in `non_ipv4` (whose
 * words for `n` packets are zeroed first when it is the burst's first,
 * `bad` == 0) and counted in the return value. */
static __attribute__((noinline)) unsigned ms_read_slow(const struct rte_mbuf *m, unsigned i,
                                                       unsigned n, uint16_t *ipids,
                                                       uint64_t *non_ipv4, unsigned bad)
{
    uint16_t ipid = 0;
    if (ms_parse_packet(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &ipid,
                        NULL)) {
        ipids[i] = ipid;
        return 0;
    }
    if (bad == 0)
        memset(non_ipv4, 0, ((size_t)n + 63u) / 64u * 8u);
    ipids[i] = 0;
    non_ipv4[i >> 6] |= UINT64_C(1) << (i & 63);
    return 1;
}

/* One packet's IPID into ipids[i] on the fast path (mbuf -> data pointer ->
 * one 4-byte check -> IPID), else the slow one; `bad` counts the non-IPv4
 * packets seen so far. */
#define MS_READ_ONE(i)                                                                     \
    do {                                                                                   \
        const struct rte_mbuf *m_ = pkts[i];                                               \
        const uint8_t *d_ = (const uint8_t *)m_->buf_addr + m_->data_off;                  \
        uint32_t w_;                                                                       \
        memcpy(&w_, d_ + 12, 4);                                                           \
        if (likely((w_ & MS_FAST_MASK) == MS_FAST_WANT && m_->data_len >= 34)) {           \
            uint16_t id_;                                                                  \
            memcpy(&id_, d_ + 18, 2);                                                      \
            ipids[i] = (uint16_t)__builtin_bswap16(id_);                                   \
        } else {                                                                           \
            bad += ms_read_slow(m_, i, n, ipids, non_ipv4, bad);                           \
        }                                                                                  \
    } while (0)

/* Reads the IPIDs of n packets into a batch's slots; non-IPv4 packets get
 * IPID 0 and their bit in `non_ipv4` (zeroed on the first one: untouched
 * when every packet is IPv4). With `prefetch`, each packet's first data line
 * is prefetched MS_PREFETCH packets ahead (rx: the application may not have
 * touched the data yet; tx needs none, the application or the rx hook just
 * read it). Returns the number of non-IPv4 packets. */
static inline __attribute__((always_inline)) unsigned
ms_read_ipids(struct rte_mbuf **pkts, unsigned n, uint16_t *ipids, uint64_t *non_ipv4,
              int prefetch)
{
    unsigned i = 0, bad = 0;
    if (prefetch) {
        unsigned pf = n < MS_PREFETCH ? n : MS_PREFETCH;
        for (i = 0; i < pf; i++)
            rte_prefetch0((const uint8_t *)pkts[i]->buf_addr + pkts[i]->data_off);
#pragma GCC unroll 2
        for (i = 0; i + MS_PREFETCH < n; i++) {
            const struct rte_mbuf *a = pkts[i + MS_PREFETCH];
            rte_prefetch0((const uint8_t *)a->buf_addr + a->data_off);
            MS_READ_ONE(i);
        }
    }
#pragma GCC unroll 2
    for (; i < n; i++)
        MS_READ_ONE(i);
    return bad;
}

/* The generic reader (5-tuples): every packet through ms_parse_packet.
 * `non_ipv4` is pre-zeroed (ms_ring_reserve_batch). */
static unsigned ms_read_tuples(struct rte_mbuf **pkts, unsigned n, uint16_t *ipids,
                               uint64_t *non_ipv4, uint8_t *tuples)
{
    unsigned i, bad = 0;
    for (i = 0; i < n; i++) {
        uint16_t ipid = 0;
        uint8_t *t = tuples + (size_t)i * MS_TUPLE_LEN;
        if (ms_parse_packet(rte_pktmbuf_mtod(pkts[i], const uint8_t *),
                            rte_pktmbuf_data_len(pkts[i]), &ipid, t)) {
            ipids[i] = ipid;
        } else {
            memset(t, 0, MS_TUPLE_LEN);
            ipids[i] = 0;
            non_ipv4[i >> 6] |= UINT64_C(1) << (i & 63);
            bad++;
        }
    }
    return bad;
}

/* Counts one recorded batch of `n` packets in the stream's statistics
 * (single writer: the stream's own lcore; relaxed stores for readers). */
static inline void ms_count(struct ms_stream *s, uint16_t n)
{
    __atomic_store_n(&s->batches, s->batches + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->packets, s->packets + n, __ATOMIC_RELAXED);
}

/* Bytes of a batch record's IPID area and bitmap for n packets. */
#define MS_IPIDS_LEN(n) ms_align8((uint64_t)(n) * 2u)
#define MS_BITMAP_LEN(n) (((uint64_t)(n) + 63u) / 64u * 8u)

/* Reserves a batch record of n packets without tuples, sized for the bitmap
 * (which is dropped again when every packet is IPv4), and zeroes the word
 * holding the IPIDs' alignment padding (the IPIDs overwrite the rest of
 * it). One ring reservation per burst; nothing counted on failure. Returns
 * the record or NULL (*seq, *cause as ms_ring_reserve_quiet). */
static inline __attribute__((always_inline)) uint8_t *
ms_reserve_ipids(struct ms_ring *r, unsigned n, uint64_t *seq, int *cause)
{
    uint64_t ipl = MS_IPIDS_LEN(n);
    uint8_t *p = ms_ring_reserve_quiet(r, sizeof(struct ms_batch_rec) + ipl + MS_BITMAP_LEN(n),
                                       seq, cause);
    if (likely(p != NULL)) {
        uint64_t zero = 0;
        memcpy(p + sizeof(struct ms_batch_rec) + ipl - 8u, &zero, 8);
    }
    return p;
}

/* Writes the fixed part of a batch record reserved by ms_reserve_ipids once
 * its IPIDs are in: `bad` non-IPv4 packets among `count` decide whether the
 * bitmap stays. Sets the ring's pending length; the caller commits. */
static inline __attribute__((always_inline)) void
ms_finish_ipids(struct ms_ring *r, uint8_t *p, uint64_t seq, uint64_t tsc, uint16_t requested,
                uint16_t count, unsigned bad)
{
    uint64_t len = sizeof(struct ms_batch_rec) + MS_IPIDS_LEN(count) +
                   (bad ? MS_BITMAP_LEN(count) : 0u);
    ms_write_batch_head(p, len, bad ? MS_BATCH_F_NON_IPV4 : 0u, seq, tsc, requested, count);
    r->pending_len = (uint32_t)len;
}

/* Records a burst of `nb` packets read from their mbufs (rx, and the tx
 * callback fallback). A full ring or a too-big record is counted by the ring
 * and otherwise ignored: the NF never waits. */
static inline __attribute__((always_inline)) void
ms_record_burst(struct ms_stream *s, uint64_t tsc, uint16_t requested, struct rte_mbuf **pkts,
                uint16_t nb, int prefetch)
{
    struct ms_ring *r = &s->ring;
    uint64_t seq;
    int cause;
    uint8_t *p;
    unsigned bad;
    if (unlikely(s->tuples)) {
        struct ms_batch_slots sl;
        uint32_t flags = MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES;
        if (ms_ring_reserve_batch(r, tsc, requested, nb, flags, &sl) != MS_RING_OK)
            return;
        /* The bitmap is dropped from the record when every packet was IPv4. */
        if (ms_read_tuples(pkts, nb, sl.ipids, sl.non_ipv4, sl.tuples) == 0)
            ms_ring_shrink_batch(r, &sl, nb, nb, flags, MS_BATCH_F_TUPLES);
        ms_commit(s);
        ms_count(s, nb);
        return;
    }
    p = ms_reserve_ipids(r, nb, &seq, &cause);
    if (unlikely(p == NULL)) {
        ms_ring_drop(r, cause);
        return;
    }
    bad = ms_read_ipids(pkts, nb, (uint16_t *)(void *)(p + sizeof(struct ms_batch_rec)),
                        (uint64_t *)(void *)(p + sizeof(struct ms_batch_rec) + MS_IPIDS_LEN(nb)),
                        prefetch);
    ms_finish_ipids(r, p, seq, tsc, requested, nb, bad);
    ms_commit(s);
    ms_count(s, nb);
}

static uint16_t ms_rx_cb(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t nb,
                         uint16_t max_pkts, void *arg)
{
    struct ms_stream *s = arg;
    uint64_t tsc;
    (void)port;
    (void)queue;
    s->ring.polls++; /* published with head (ms_publish) */
    if (nb == 0) {
        /* Idle: publish what this thread holds back, and the counters
         * every 1024 empty polls. */
        if (ms_ndirty)
            ms_flush_dirty();
        if ((++s->ring.empty_polls & MS_IDLE_ANCHOR_MASK) == 0) {
            ms_publish(s);
            ms_maybe_anchor(s, rte_rdtsc());
        }
        if (g_cfg.yield_after && ++s->empty_run >= g_cfg.yield_after) {
            s->empty_run = 0;
            sched_yield();
        }
        return 0;
    }
    s->empty_run = 0;
    tsc = rte_rdtsc();
    ms_record_burst(s, tsc, max_pkts, pkts, nb, 1);
    ms_maybe_anchor(s, tsc);
    return nb;
}

/* A tx chunk the driver accepted only in part (0 < sent < n), or any
 * accepted chunk of a stream with tuples: the record reserved for n packets
 * (`flags`; without tuples its fixed part is not written yet) is completed,
 * shrunk to the accepted prefix (and flags) and committed.
 * The bitmap stays only if a packet of the whole chunk is not IPv4 (then it
 * was zeroed and filled; a refused packet may be the only non-IPv4 one). */
static __attribute__((noinline)) void ms_tx_partial(struct ms_stream *s, uint8_t *rec,
                                                    uint64_t seq, uint64_t tsc, uint16_t n,
                                                    uint16_t sent, uint32_t flags, unsigned bad)
{
    struct ms_ring *r = &s->ring;
    struct ms_batch_slots sl;
    uint32_t keep_flags = bad ? flags : flags & ~MS_BATCH_F_NON_IPV4;
    sl.seq = seq;
    sl.ipids = (uint16_t *)(void *)(rec + sizeof(struct ms_batch_rec));
    sl.non_ipv4 = (uint64_t *)(void *)(rec + sizeof(struct ms_batch_rec) + MS_IPIDS_LEN(n));
    sl.tuples = (flags & MS_BATCH_F_TUPLES) ? (uint8_t *)sl.non_ipv4 + MS_BITMAP_LEN(n) : NULL;
    if (flags & MS_BATCH_F_TUPLES) {
        ((struct ms_batch_rec *)(void *)rec)->tsc = tsc;
    } else {
        ms_finish_ipids(r, rec, seq, tsc, n, n, bad); /* flags: NON_IPV4 iff bad */
        flags = keep_flags;
        if (!bad)
            sl.non_ipv4 = NULL;
    }
    ms_ring_shrink_batch(r, &sl, n, sent, flags, keep_flags);
    ms_commit(s);
    ms_count(s, sent);
}

/* The tx wrapper. Per chunk of up to MS_TX_CHUNK packets: reserve the batch
 * record for all of them (one reservation; a failure is not counted yet), read the IPIDs
 * straight into it, call the driver — which may free (and the pool recycle)
 * the accepted mbufs, so nothing below touches pkts[] again — then commit
 * the record shrunk to the accepted prefix, cancel it when nothing was
 * accepted, or, when there was no room, count the loss only if packets were
 * sent. The record's timestamp is taken after the driver call. */
static inline uint16_t ms_tx_common(uint16_t port, void *txq, struct rte_mbuf **pkts, uint16_t nb)
{
    struct ms_port *p = g_ports[port];
    eth_tx_burst_t orig = __atomic_load_n(&p->tx_orig, __ATOMIC_ACQUIRE);
    void **qdata = rte_eth_fp_ops[port].txq.data;
    struct ms_stream *s = NULL;
    uint16_t q, done = 0;

    for (q = 0; q < p->nb_txq; q++) {
        if (qdata[q] == txq) {
            s = &p->tx[q];
            break;
        }
    }
    if (!s || !s->ring.hdr || nb == 0)
        return orig(txq, pkts, nb);

    while (done < nb) {
        struct ms_ring *r = &s->ring;
        struct rte_mbuf **c = pkts + done;
        uint16_t left = (uint16_t)(nb - done), sent;
        uint16_t n = left < MS_TX_CHUNK ? left : (uint16_t)MS_TX_CHUNK;
        uint64_t tsc, seq = 0;
        uint32_t flags;
        uint8_t *rec;
        unsigned bad = 0;
        int cause;
        if (unlikely(s->tuples)) {
            struct ms_batch_slots sl;
            flags = MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES;
            cause = ms_ring_reserve_batch_ex(r, 0, n, n, flags, &sl, 0);
            rec = cause == MS_RING_OK ? (uint8_t *)sl.ipids - sizeof(struct ms_batch_rec) : NULL;
            if (rec)
                bad = ms_read_tuples(c, n, sl.ipids, sl.non_ipv4, sl.tuples);
        } else {
            flags = MS_BATCH_F_NON_IPV4;
            rec = ms_reserve_ipids(r, n, &seq, &cause);
            if (likely(rec != NULL))
                bad = ms_read_ipids(c, n, (uint16_t *)(void *)(rec + sizeof(struct ms_batch_rec)),
                                    (uint64_t *)(void *)(rec + sizeof(struct ms_batch_rec) +
                                                         MS_IPIDS_LEN(n)),
                                    0);
        }
        sent = orig(txq, c, n);
        tsc = rte_rdtsc();
        if (likely(rec != NULL)) {
            if (likely(sent == n && flags == MS_BATCH_F_NON_IPV4)) {
                ms_finish_ipids(r, rec, seq, tsc, n, n, bad);
                ms_commit(s);
                ms_count(s, n);
            } else if (sent == 0) {
                ms_ring_cancel(r);
            } else {
                ms_tx_partial(s, rec, seq, tsc, n, sent, flags, bad);
            }
        } else if (sent) {
            ms_ring_drop(r, cause);
        }
        ms_maybe_anchor(s, tsc);
        done = (uint16_t)(done + sent);
        if (sent < n) {
            if (g_cfg.yield_after)
                sched_yield();
            break;
        }
    }
    return done;
}

/* One trampoline per port: the driver's tx function gets only the queue's
 * private data pointer, so the port is baked into the function. Written out
 * for ports 0..63; only those below RTE_MAX_ETHPORTS are ever installed. */
#define MS_TRAMP(P)                                                                        \
    static uint16_t ms_tx_tramp_##P(void *txq, struct rte_mbuf **pkts, uint16_t nb)        \
    {                                                                                      \
        return ms_tx_common(P, txq, pkts, nb);                                             \
    }
#define MS_TRAMP10(D)                                                                      \
    MS_TRAMP(D##0) MS_TRAMP(D##1) MS_TRAMP(D##2) MS_TRAMP(D##3) MS_TRAMP(D##4)             \
    MS_TRAMP(D##5) MS_TRAMP(D##6) MS_TRAMP(D##7) MS_TRAMP(D##8) MS_TRAMP(D##9)
MS_TRAMP(0) MS_TRAMP(1) MS_TRAMP(2) MS_TRAMP(3) MS_TRAMP(4)
MS_TRAMP(5) MS_TRAMP(6) MS_TRAMP(7) MS_TRAMP(8) MS_TRAMP(9)
MS_TRAMP10(1) MS_TRAMP10(2) MS_TRAMP10(3) MS_TRAMP10(4) MS_TRAMP10(5)
MS_TRAMP(60) MS_TRAMP(61) MS_TRAMP(62) MS_TRAMP(63)

#define MS_E(P) ms_tx_tramp_##P,
#define MS_E10(D) MS_E(D##0) MS_E(D##1) MS_E(D##2) MS_E(D##3) MS_E(D##4) \
    MS_E(D##5) MS_E(D##6) MS_E(D##7) MS_E(D##8) MS_E(D##9)
static const eth_tx_burst_t ms_tx_tramps[64] = {
    MS_E(0) MS_E(1) MS_E(2) MS_E(3) MS_E(4) MS_E(5) MS_E(6) MS_E(7) MS_E(8) MS_E(9)
    MS_E10(1) MS_E10(2) MS_E10(3) MS_E10(4) MS_E10(5)
    MS_E(60) MS_E(61) MS_E(62) MS_E(63)
};
_Static_assert(MS_MAX_PORTS <= 64, "one tx trampoline per port: extend ms_tx_tramps");

/* Fallback tx hook: runs before the driver, so it records what the
 * application offered. Under backpressure the driver accepts fewer and the
 * application retries or frees the rest: those packets appear in this
 * stream although they never left. */
static uint16_t ms_tx_cb(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t nb,
                         void *arg)
{
    struct ms_stream *s = arg;
    uint64_t tsc;
    (void)port;
    (void)queue;
    if (nb == 0)
        return 0;
    tsc = rte_rdtsc();
    ms_record_burst(s, tsc, nb, pkts, nb, 0);
    ms_maybe_anchor(s, tsc);
    return nb;
}

/* ---------------------------------------------------------- control path */

/* Builds "<dir>/<nf_name>.<pid>.p<port>.q<queue>.<rx|tx>.ring" with any '/'
 * in the NF name replaced. Returns 0 or -ENAMETOOLONG. */
static int ms_ring_path(char *out, size_t cap, uint16_t port, uint16_t queue, uint8_t dir)
{
    char name[MS_RING_NAME_LEN];
    size_t i;
    int n;
    ms_copy(name, sizeof(name), g_cfg.nf_name);
    for (i = 0; name[i]; i++)
        if (name[i] == '/' || (i == 0 && name[i] == '.'))
            name[i] = '_';
    n = snprintf(out, cap, "%s/%s.%ld.p%u.q%u.%s.ring", g_cfg.ring_dir, name, (long)getpid(),
                 (unsigned)port, (unsigned)queue, dir == MS_DIR_RX ? "rx" : "tx");
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int ms_open_stream(struct ms_stream *s, uint16_t port, uint16_t queue, uint8_t dir)
{
    char path[PATH_MAX];
    struct ms_ring_identity id;
    struct timespec now;
    int rc;
    if (s->ring.hdr)
        return 0;
    rc = ms_ring_path(path, sizeof(path), port, queue, dir);
    if (rc)
        return rc;
    clock_gettime(CLOCK_REALTIME, &now);
    memset(&id, 0, sizeof(id));
    id.nf_name = g_cfg.nf_name;
    id.nf_type = g_cfg.nf_type;
    id.host = g_cfg.host;
    id.role = g_cfg.role;
    id.direction = dir;
    id.port = port;
    id.queue = queue;
    id.carries_tuples = port < 64 && (g_cfg.tuple_ports >> port) & 1u;
    id.pid = (uint32_t)getpid();
    id.created_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    id.tsc_hz_hint = rte_get_tsc_hz();
    rc = ms_ring_create_file(path, &id, g_cfg.ring_size, 0, -1, &s->ring);
    if (rc) {
        fprintf(stderr, "microscope-shim: cannot create ring %s: %s\n", path, strerror(-rc));
        memset(&s->ring, 0, sizeof(s->ring));
        return rc;
    }
    /* Fault the data area in now (control path), not on the first lap of
     * the hot path: a fresh tmpfs page costs a fault and a clear. Bytes at
     * or beyond head are free space, so writing them changes nothing. */
    {
        volatile uint8_t *d = s->ring.data;
        uint64_t off;
        for (off = 0; off < s->ring.data_size; off += 4096)
            d[off] = 0;
    }
    s->port = port;
    s->queue = queue;
    s->dir = dir;
    s->tuples = (uint8_t)(id.carries_tuples != 0);
    s->published = s->ring.head;
    s->publish_bytes = g_cfg.publish_bytes;
    if (s->publish_bytes > s->ring.data_size / 4u)
        s->publish_bytes = (uint32_t)(s->ring.data_size / 4u);
    ms_anchor_now(s);
    return 0;
}

static int ms_attach_locked(uint16_t port_id)
{
    struct rte_eth_dev_info info;
    struct ms_port *p;
    uint16_t q, nrx, ntx;
    int rc, first_err = 0;

    if (port_id >= MS_MAX_PORTS)
        return -ERANGE;
    if (!rte_eth_dev_is_valid_port(port_id))
        return -ENODEV;
    rc = rte_eth_dev_info_get(port_id, &info);
    if (rc)
        return rc < 0 ? rc : -rc;
    p = g_ports[port_id];
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        g_ports[port_id] = p;
    }
    nrx = info.nb_rx_queues;
    ntx = info.nb_tx_queues;
    if (nrx > MICROSCOPE_MAX_QUEUES || ntx > MICROSCOPE_MAX_QUEUES) {
        fprintf(stderr, "microscope-shim: port %u has %u rx / %u tx queues; recording the "
                        "first %u of each\n", port_id, nrx, ntx, MICROSCOPE_MAX_QUEUES);
        first_err = -ERANGE;
        if (nrx > MICROSCOPE_MAX_QUEUES)
            nrx = MICROSCOPE_MAX_QUEUES;
        if (ntx > MICROSCOPE_MAX_QUEUES)
            ntx = MICROSCOPE_MAX_QUEUES;
    }

    for (q = 0; q < nrx; q++) {
        struct ms_stream *s = &p->rx[q];
        if (s->cb)
            continue; /* callbacks survive stop/start: once per queue */
        rc = ms_open_stream(s, port_id, q, MS_DIR_RX);
        if (rc) {
            first_err = first_err ? first_err : rc;
            continue;
        }
        s->cb = rte_eth_add_rx_callback(port_id, q, ms_rx_cb, s);
        if (!s->cb) {
            fprintf(stderr, "microscope-shim: rte_eth_add_rx_callback(port %u, queue %u): %s\n",
                    port_id, q, rte_strerror(rte_errno));
            first_err = first_err ? first_err : -rte_errno;
        }
    }
    if (nrx > p->nb_rxq)
        p->nb_rxq = nrx;

    for (q = 0; q < ntx; q++) {
        struct ms_stream *s = &p->tx[q];
        rc = ms_open_stream(s, port_id, q, MS_DIR_TX);
        if (rc) {
            first_err = first_err ? first_err : rc;
            continue;
        }
        if (g_cfg.tx_mode == MS_TX_CALLBACK && !s->cb) {
            s->cb = rte_eth_add_tx_callback(port_id, q, ms_tx_cb, s);
            if (!s->cb) {
                fprintf(stderr,
                        "microscope-shim: rte_eth_add_tx_callback(port %u, queue %u): %s\n",
                        port_id, q, rte_strerror(rte_errno));
                first_err = first_err ? first_err : -rte_errno;
            }
        }
    }
    if (g_cfg.tx_mode == MS_TX_WRAP && ntx > 0) {
        eth_tx_burst_t cur = __atomic_load_n(&rte_eth_fp_ops[port_id].tx_pkt_burst,
                                             __ATOMIC_ACQUIRE);
        eth_tx_burst_t tramp = ms_tx_tramps[port_id];
        if (cur == NULL) {
            first_err = first_err ? first_err : -EAGAIN;
        } else if (cur != tramp) {
            /* Queue count first, then the driver function, then the switch:
             * a poller that sees the trampoline sees both. */
            __atomic_store_n(&p->nb_txq, ntx, __ATOMIC_RELEASE);
            __atomic_store_n(&p->tx_orig, cur, __ATOMIC_RELEASE);
            __atomic_store_n(&rte_eth_fp_ops[port_id].tx_pkt_burst, tramp, __ATOMIC_RELEASE);
        }
    }
    ms_log("port %u: %u rx + %u tx queue(s) recorded%s%s", port_id, nrx, ntx,
           (port_id < 64 && (g_cfg.tuple_ports >> port_id) & 1u) ? ", with 5-tuples" : "",
           g_cfg.tx_mode == MS_TX_CALLBACK ? ", tx via callback (offered, not sent)" : "");
    return first_err;
}

MS_API int microscope_attach(uint16_t port_id)
{
    int rc;
    pthread_mutex_lock(&g_lock);
    ms_init_locked();
    rc = g_cfg.disabled ? 0 : ms_attach_locked(port_id);
    pthread_mutex_unlock(&g_lock);
    return rc;
}

static void ms_for_each_stream(void (*fn)(struct ms_stream *, void *), void *arg)
{
    unsigned port, q;
    for (port = 0; port < MS_MAX_PORTS; port++) {
        struct ms_port *p = g_ports[port];
        if (!p)
            continue;
        for (q = 0; q < MICROSCOPE_MAX_QUEUES; q++) {
            if (p->rx[q].ring.hdr)
                fn(&p->rx[q], arg);
            if (p->tx[q].ring.hdr)
                fn(&p->tx[q], arg);
        }
    }
}

static void ms_final_anchor(struct ms_stream *s, void *arg)
{
    (void)arg;
    /* Racing a poller that still runs on this stream would break the
     * single-producer rule; shutdown is documented for after the lcores
     * stopped (and at exit). */
    ms_anchor_now(s);
}

static void ms_flush_stream(struct ms_stream *s, void *arg)
{
    const uint16_t *port = arg;
    if (s->port == *port && s->ring.head != s->published)
        ms_publish(s);
}

MS_API void microscope_flush(uint16_t port_id)
{
    pthread_mutex_lock(&g_lock);
    ms_for_each_stream(ms_flush_stream, &port_id);
    pthread_mutex_unlock(&g_lock);
}

MS_API void microscope_shutdown(void)
{
    pthread_mutex_lock(&g_lock);
    ms_for_each_stream(ms_final_anchor, NULL);
    pthread_mutex_unlock(&g_lock);
}

static void ms_sum(struct ms_stream *s, void *arg)
{
    struct microscope_stats *st = arg;
    st->streams++;
    st->batches += __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
    st->packets += __atomic_load_n(&s->packets, __ATOMIC_RELAXED);
    st->anchors += __atomic_load_n(&s->anchors, __ATOMIC_RELAXED);
    st->lost_full += atomic_load_explicit(&s->ring.hdr->lost_full, memory_order_relaxed);
    st->lost_too_big += atomic_load_explicit(&s->ring.hdr->lost_too_big, memory_order_relaxed);
}

MS_API void microscope_stats(struct microscope_stats *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&g_lock);
    ms_for_each_stream(ms_sum, out);
    pthread_mutex_unlock(&g_lock);
}

MS_API const char *microscope_ring_dir(void)
{
    return g_inited && !g_cfg.disabled ? g_cfg.ring_dir : NULL;
}

__attribute__((destructor)) static void ms_at_exit(void)
{
    struct microscope_stats st;
    if (!g_inited || g_cfg.disabled)
        return;
    /* No final anchor here: a forwarding lcore may still be polling, and a
     * second writer would break the ring's single-producer rule. */
    microscope_stats(&st);
    if (st.streams)
        ms_log("exit: %llu streams, %llu batches, %llu packets, %llu anchors, lost_full %llu, "
               "lost_too_big %llu",
               (unsigned long long)st.streams, (unsigned long long)st.batches,
               (unsigned long long)st.packets, (unsigned long long)st.anchors,
               (unsigned long long)st.lost_full, (unsigned long long)st.lost_too_big);
}
