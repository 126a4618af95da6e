/*
 * microscope_ring.h — the ONE definition of Microscope's shared-memory ring.
 *
 * A ring is a file named "<anything>.ring" in a rings directory (such as
 * /dev/shm/microscope/; the dumper picks up every regular *.ring file there,
 * including ones created later; suggested name:
 * "<nf>.p<port>.q<queue>.<rx|tx>.ring") that one NF process maps and writes (the
 * producer) and the dumper maps and reads (the consumer). The file must be
 * owned by a user the dumper trusts and must not be group- or
 * world-writable (group-writable only with the dumper's --ring-group). The
 * consumer holds an exclusive flock(2) on the file while it drains it; the
 * producer takes no lock. One ring per (NF process, port,
 * queue, direction): single producer, single consumer. The Rust mirror lives in
 * collector/src/ring/layout.rs; both sides assert every size and offset below
 * and collector's tests compile this header and compare the two.
 *
 * File layout (all integers native little-endian; both supported targets,
 * x86_64 and aarch64, are little-endian, asserted below):
 *
 *   [0, 4096)                 struct ms_ring_header
 *   [4096, 4096 + data_size)  data area: a byte ring of records
 *
 * Header (offsets in bytes):
 *     0 magic            u64  MS_RING_MAGIC, stored LAST (release) by the creator
 *     8 version          u32  MS_RING_VERSION
 *    12 header_size      u32  4096 (= offset of the data area)
 *    16 data_size        u64  power of two, >= 4096
 *    24 max_record_size  u32  multiple of 8, 64 <= it <= min(data_size / 2, 1 MiB)
 *    28 flags            u32  MS_RING_F_CARRIES_TUPLES
 *    32 pid              u32  producer process id
 *    36 role             u8   MS_ROLE_SOURCE / _NF / _SINK
 *    37 direction        u8   MS_DIR_RX / MS_DIR_TX
 *    38 port             u16
 *    40 queue            u16
 *    42 reserved0        u16  0
 *    44 reserved1        u32  0
 *    48 created_ns       u64  CLOCK_REALTIME at creation (identifies this ring instance)
 *    56 tsc_hz_hint      u64  nominal TSC Hz (rte_get_tsc_hz()), 0 if unknown
 *    64 nf_name          char[64]  NUL-terminated UTF-8, e.g. "fw2"
 *   128 nf_type          char[64]  NUL-terminated UTF-8, e.g. "firewall"
 *   192 host             char[64]  NUL-terminated UTF-8, e.g. the hostname
 *   256 reserved2        u8[256]   0
 *   --- producer-owned (written only by the producer), own cache lines ---
 *   512 head             u64  bytes ever published into the data area (release)
 *   520 next_seq         u64  sequence number of the next record offered
 *   528 lost_full        u64  records dropped: ring full
 *   536 lost_too_big     u64  records dropped: larger than max_record_size
 *   544 polls            u64  rx bursts polled (utilization estimation)
 *   552 empty_polls      u64  rx bursts that returned 0 packets
 *   560 reserved3        u8[80]
 *   --- consumer-owned (written only by the consumer) ---
 *   640 tail             u64  bytes the consumer has made durable (release)
 *   648 consumer_cookie  u64  identifies the trace file the consumer writes to
 *   656 consumer_stream  u32  stream id of this ring in that trace
 *   660 consumer_pid     u32  pid of the consumer that last committed
 *   664 lost_write       u64  records the consumer could not make durable
 *   672 lost_corrupt     u64  records the consumer found invalid and discarded
 *   680 reserved4        u8[88]
 *   768 reserved5        u8[3328]  (pads the header to 4096)
 *
 * head and tail are byte counters that only grow (never wrap in practice:
 * 2^64 bytes). A record starts at data[head % data_size]. Every record is a
 * multiple of 8 bytes, 8-byte aligned, and never wraps around the end of the
 * data area: when it does not fit before the end, the producer first writes a
 * PAD record covering the rest of the area. Free space = data_size - (head -
 * tail).
 *
 * Records (struct ms_rec_hdr first: len = whole record in bytes incl. header):
 *   BATCH  (type 1): ms_batch_rec (32 bytes), then
 *            u16 ipids[count], zero-padded to a multiple of 8 bytes;
 *            if flags & MS_BATCH_F_NON_IPV4: u64 bitmap[(count + 63) / 64],
 *               bit i set <=> packet i is not IPv4 (its ipid is 0);
 *            if flags & MS_BATCH_F_TUPLES: count packed 13-byte 5-tuples
 *               (src_ip u32, dst_ip u32, src_port u16, dst_port u16, proto u8,
 *               little-endian, addresses/ports in HOST order; see ms_tuple_pack),
 *               zero-padded to a multiple of 8 bytes.
 *          len == ms_batch_len(count, flags) exactly.
 *   ANCHOR (type 2): ms_anchor_rec (32 bytes): seq, tsc, CLOCK_MONOTONIC ns.
 *   PAD    (type 3): header only + ignored bytes up to the end of the area.
 *
 * Sequence numbers: one counter per ring shared by batch and anchor records,
 * starting at 0, advanced by one for EVERY record offered, including the ones
 * dropped (lost_full, lost_too_big). A gap in the sequence numbers the
 * consumer sees is therefore exactly the records lost, and the counters say why.
 *
 * Memory ordering (C11 atomics): the producer writes a record's bytes, then
 * stores head with release; the consumer loads head with acquire before
 * reading records. The consumer stores tail with release after the records
 * are durable on disk; the producer loads tail with acquire before reusing
 * space. Counters are written by their single owner with release stores.
 *
 * The producer NEVER blocks, locks, makes a system call or allocates in
 * ms_ring_reserve/commit/put_*: when the ring is full the record is dropped and
 * counted (lost_full); a record larger than max_record_size is dropped and
 * counted (lost_too_big).
 *
 * Usage (hot path):
 *     struct ms_ring r;                         // process-private handle
 *     ms_ring_create_file(path, &id, 1 << 22, 0, -1, &r);
 *     ...
 *     ms_ring_note_poll(&r, nb_rx);
 *     if (nb_rx) {
 *         struct ms_batch_slots s;
 *         if (ms_ring_reserve_batch(&r, rte_rdtsc(), nb_pkts, nb_rx, flags, &s) == MS_RING_OK) {
 *             for (i...) s.ipids[i] = ...;     // fill in place, no copy
 *             ms_ring_commit(&r);
 *         }
 *     }
 * or the copying convenience ms_ring_put_batch(). Periodically (e.g. every
 * millisecond) ms_ring_put_anchor(&r, rte_rdtsc(), clock_gettime(MONOTONIC)).
 *
 * Compile as C11 (or later). The file-creation helpers (ms_ring_create_file /
 * ms_ring_close) need POSIX.1-2008 declarations: the default gnu11 dialect,
 * _GNU_SOURCE (DPDK builds define it) or -D_POSIX_C_SOURCE=200809L. Define
 * MS_RING_NO_POSIX to leave them out.
 */
#ifndef MICROSCOPE_RING_H
#define MICROSCOPE_RING_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdatomic.h>

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "microscope_ring.h: only little-endian targets are supported"
#endif

#define MS_RING_MAGIC UINT64_C(0x31474E495243534D) /* "MSCRING1" in memory */
#define MS_RING_VERSION 1u
#define MS_RING_HEADER_SIZE 4096u
#define MS_RING_MIN_DATA_SIZE 4096u
#define MS_RING_MIN_MAX_RECORD 64u
/* Upper bound of max_record_size (a 65535-packet batch with tuples is < 1 MiB). */
#define MS_RING_MAX_MAX_RECORD (1u << 20)
#define MS_RING_NAME_LEN 64u

#define MS_RING_F_CARRIES_TUPLES 0x1u

#define MS_ROLE_SOURCE 0u
#define MS_ROLE_NF 1u
#define MS_ROLE_SINK 2u
#define MS_DIR_RX 0u
#define MS_DIR_TX 1u

#define MS_REC_BATCH 1u
#define MS_REC_ANCHOR 2u
#define MS_REC_PAD 3u

#define MS_BATCH_F_NON_IPV4 0x1u
#define MS_BATCH_F_TUPLES 0x2u
#define MS_BATCH_F_ALL (MS_BATCH_F_NON_IPV4 | MS_BATCH_F_TUPLES)

#define MS_TUPLE_LEN 13u

/* Return codes of the producer functions. */
#define MS_RING_OK 0
#define MS_RING_LOST_FULL 1     /* dropped, counted in lost_full */
#define MS_RING_LOST_TOO_BIG 2  /* dropped, counted in lost_too_big */

struct ms_ring_header {
    /* identity: written once by the creator, before magic */
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint64_t data_size;
    uint32_t max_record_size;
    uint32_t flags;
    uint32_t pid;
    uint8_t role;
    uint8_t direction;
    uint16_t port;
    uint16_t queue;
    uint16_t reserved0;
    uint32_t reserved1;
    uint64_t created_ns;
    uint64_t tsc_hz_hint;
    char nf_name[MS_RING_NAME_LEN];
    char nf_type[MS_RING_NAME_LEN];
    char host[MS_RING_NAME_LEN];
    uint8_t reserved2[256];
    /* producer-owned */
    _Atomic uint64_t head;
    _Atomic uint64_t next_seq;
    _Atomic uint64_t lost_full;
    _Atomic uint64_t lost_too_big;
    _Atomic uint64_t polls;
    _Atomic uint64_t empty_polls;
    uint8_t reserved3[80];
    /* consumer-owned */
    _Atomic uint64_t tail;
    _Atomic uint64_t consumer_cookie;
    _Atomic uint32_t consumer_stream;
    _Atomic uint32_t consumer_pid;
    _Atomic uint64_t lost_write;
    _Atomic uint64_t lost_corrupt;
    uint8_t reserved4[88];
    uint8_t reserved5[3328];
};

struct ms_rec_hdr {
    uint32_t len;   /* whole record, bytes, multiple of 8 */
    uint16_t type;  /* MS_REC_* */
    uint16_t flags; /* MS_BATCH_F_* for batches, 0 otherwise */
};

struct ms_batch_rec {
    struct ms_rec_hdr h;
    uint64_t seq;
    uint64_t tsc;
    uint16_t requested; /* nb_pkts of the burst call */
    uint16_t count;     /* packets in the batch */
    uint32_t reserved;  /* 0 */
    /* followed by the variable part, see the top of this file */
};

struct ms_anchor_rec {
    struct ms_rec_hdr h;
    uint64_t seq;
    uint64_t tsc;
    uint64_t mono_ns;
};

_Static_assert(sizeof(_Atomic uint64_t) == 8, "atomic u64 must be 8 bytes");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "atomic u64 must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic u32 must be lock-free");
_Static_assert(sizeof(struct ms_ring_header) == MS_RING_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct ms_ring_header, magic) == 0, "magic");
_Static_assert(offsetof(struct ms_ring_header, version) == 8, "version");
_Static_assert(offsetof(struct ms_ring_header, header_size) == 12, "header_size");
_Static_assert(offsetof(struct ms_ring_header, data_size) == 16, "data_size");
_Static_assert(offsetof(struct ms_ring_header, max_record_size) == 24, "max_record_size");
_Static_assert(offsetof(struct ms_ring_header, flags) == 28, "flags");
_Static_assert(offsetof(struct ms_ring_header, pid) == 32, "pid");
_Static_assert(offsetof(struct ms_ring_header, role) == 36, "role");
_Static_assert(offsetof(struct ms_ring_header, direction) == 37, "direction");
_Static_assert(offsetof(struct ms_ring_header, port) == 38, "port");
_Static_assert(offsetof(struct ms_ring_header, queue) == 40, "queue");
_Static_assert(offsetof(struct ms_ring_header, created_ns) == 48, "created_ns");
_Static_assert(offsetof(struct ms_ring_header, tsc_hz_hint) == 56, "tsc_hz_hint");
_Static_assert(offsetof(struct ms_ring_header, nf_name) == 64, "nf_name");
_Static_assert(offsetof(struct ms_ring_header, nf_type) == 128, "nf_type");
_Static_assert(offsetof(struct ms_ring_header, host) == 192, "host");
_Static_assert(offsetof(struct ms_ring_header, head) == 512, "head");
_Static_assert(offsetof(struct ms_ring_header, next_seq) == 520, "next_seq");
_Static_assert(offsetof(struct ms_ring_header, lost_full) == 528, "lost_full");
_Static_assert(offsetof(struct ms_ring_header, lost_too_big) == 536, "lost_too_big");
_Static_assert(offsetof(struct ms_ring_header, polls) == 544, "polls");
_Static_assert(offsetof(struct ms_ring_header, empty_polls) == 552, "empty_polls");
_Static_assert(offsetof(struct ms_ring_header, tail) == 640, "tail");
_Static_assert(offsetof(struct ms_ring_header, consumer_cookie) == 648, "consumer_cookie");
_Static_assert(offsetof(struct ms_ring_header, consumer_stream) == 656, "consumer_stream");
_Static_assert(offsetof(struct ms_ring_header, consumer_pid) == 660, "consumer_pid");
_Static_assert(offsetof(struct ms_ring_header, lost_write) == 664, "lost_write");
_Static_assert(offsetof(struct ms_ring_header, lost_corrupt) == 672, "lost_corrupt");
_Static_assert(offsetof(struct ms_ring_header, reserved5) == 768, "reserved5");
_Static_assert(sizeof(struct ms_rec_hdr) == 8, "record header");
_Static_assert(sizeof(struct ms_batch_rec) == 32, "batch record");
_Static_assert(offsetof(struct ms_batch_rec, seq) == 8, "batch seq");
_Static_assert(offsetof(struct ms_batch_rec, tsc) == 16, "batch tsc");
_Static_assert(offsetof(struct ms_batch_rec, requested) == 24, "batch requested");
_Static_assert(offsetof(struct ms_batch_rec, count) == 26, "batch count");
_Static_assert(sizeof(struct ms_anchor_rec) == 32, "anchor record");
_Static_assert(offsetof(struct ms_anchor_rec, seq) == 8, "anchor seq");
_Static_assert(offsetof(struct ms_anchor_rec, tsc) == 16, "anchor tsc");
_Static_assert(offsetof(struct ms_anchor_rec, mono_ns) == 24, "anchor mono_ns");

/* Stream identity given to ms_ring_format / ms_ring_create_file. Strings are
 * truncated to 63 bytes. */
struct ms_ring_identity {
    const char *nf_name;
    const char *nf_type;
    const char *host;
    uint8_t role;      /* MS_ROLE_* */
    uint8_t direction; /* MS_DIR_* */
    uint16_t port;
    uint16_t queue;
    int carries_tuples; /* nonzero: batch records carry 5-tuples */
    uint32_t pid;
    uint64_t created_ns;  /* CLOCK_REALTIME */
    uint64_t tsc_hz_hint; /* 0 if unknown */
};

/* Process-private producer handle. Never shared; the shared state lives in
 * the header. */
struct ms_ring {
    struct ms_ring_header *hdr;
    uint8_t *data;
    uint64_t data_size;
    uint64_t mask;
    uint32_t max_record_size;
    uint32_t pending_len; /* length of the reserved, not yet committed record */
    uint64_t head;        /* private copy of hdr->head (plus padding written) */
    uint64_t tail_cache;  /* last tail loaded from hdr->tail */
    uint64_t next_seq;
    uint64_t lost_full;
    uint64_t lost_too_big;
    uint64_t polls;
    uint64_t empty_polls;
    void *map;            /* ms_ring_create_file: mapping to unmap */
    size_t map_len;
};

/* Pointers into a reserved batch record, to be filled before ms_ring_commit. */
struct ms_batch_slots {
    uint64_t seq;
    uint16_t *ipids;      /* count entries */
    uint64_t *non_ipv4;   /* (count + 63) / 64 words, zeroed; NULL without MS_BATCH_F_NON_IPV4 */
    uint8_t *tuples;      /* 13 * count bytes; NULL without MS_BATCH_F_TUPLES */
};

static inline uint64_t ms_align8(uint64_t n) { return (n + 7u) & ~UINT64_C(7); }

/* Exact length in bytes of a batch record with `count` packets and `flags`. */
static inline uint64_t ms_batch_len(uint32_t count, uint32_t flags)
{
    uint64_t len = sizeof(struct ms_batch_rec) + ms_align8((uint64_t)count * 2u);
    if (flags & MS_BATCH_F_NON_IPV4)
        len += ((uint64_t)count + 63u) / 64u * 8u;
    if (flags & MS_BATCH_F_TUPLES)
        len += ms_align8((uint64_t)count * MS_TUPLE_LEN);
    return len;
}

/* Packs a 5-tuple (host-order fields) into the 13-byte wire form. */
static inline void ms_tuple_pack(uint8_t out[MS_TUPLE_LEN], uint32_t src_ip, uint32_t dst_ip,
                                 uint16_t src_port, uint16_t dst_port, uint8_t proto)
{
    memcpy(out + 0, &src_ip, 4);
    memcpy(out + 4, &dst_ip, 4);
    memcpy(out + 8, &src_port, 2);
    memcpy(out + 10, &dst_port, 2);
    out[12] = proto;
}

static inline int ms_is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

static inline void ms_copy_name(char dst[MS_RING_NAME_LEN], const char *src)
{
    size_t i = 0;
    if (src)
        for (; i < MS_RING_NAME_LEN - 1 && src[i]; i++)
            dst[i] = src[i];
    for (; i < MS_RING_NAME_LEN; i++)
        dst[i] = 0;
}

/* Default max_record_size for a data area: a quarter of it, at most 64 KiB. */
static inline uint32_t ms_default_max_record(uint64_t data_size)
{
    uint64_t m = data_size / 4u;
    if (m > 65536u)
        m = 65536u;
    return (uint32_t)(m & ~UINT64_C(7));
}

/* Initializes a ring in `mem` (len bytes, zero-filled or not, 8-aligned):
 * data_size = len - 4096. max_record_size 0 picks ms_default_max_record().
 * The magic is stored last with release, so a consumer never sees a
 * half-initialized header.
 * Returns 0, or -1 when len - 4096 is not a power of two >= 4096 or
 * max_record_size is not a multiple of 8 in [64, min(data_size / 2, 1 MiB)]. */
static inline int ms_ring_format(void *mem, size_t len, const struct ms_ring_identity *id,
                                 uint32_t max_record_size)
{
    struct ms_ring_header *h = (struct ms_ring_header *)mem;
    uint64_t data_size;
    if (len < MS_RING_HEADER_SIZE)
        return -1;
    data_size = (uint64_t)len - MS_RING_HEADER_SIZE;
    if (!ms_is_pow2(data_size) || data_size < MS_RING_MIN_DATA_SIZE)
        return -1;
    if (max_record_size == 0)
        max_record_size = ms_default_max_record(data_size);
    if (max_record_size % 8u || max_record_size < MS_RING_MIN_MAX_RECORD ||
        max_record_size > data_size / 2u || max_record_size > MS_RING_MAX_MAX_RECORD)
        return -1;
    atomic_store_explicit(&h->magic, 0, memory_order_relaxed);
    memset((uint8_t *)mem + sizeof(h->magic), 0, MS_RING_HEADER_SIZE - sizeof(h->magic));
    h->version = MS_RING_VERSION;
    h->header_size = MS_RING_HEADER_SIZE;
    h->data_size = data_size;
    h->max_record_size = max_record_size;
    h->flags = id->carries_tuples ? MS_RING_F_CARRIES_TUPLES : 0u;
    h->pid = id->pid;
    h->role = id->role;
    h->direction = id->direction;
    h->port = id->port;
    h->queue = id->queue;
    h->created_ns = id->created_ns;
    h->tsc_hz_hint = id->tsc_hz_hint;
    ms_copy_name(h->nf_name, id->nf_name);
    ms_copy_name(h->nf_type, id->nf_type);
    ms_copy_name(h->host, id->host);
    atomic_store_explicit(&h->magic, MS_RING_MAGIC, memory_order_release);
    return 0;
}

/* Attaches a producer handle to a formatted ring (ms_ring_format) of `len`
 * bytes. A producer attaching to a ring it did not just format continues
 * after its head and sequence number.
 * Returns 0, or -1 when the header is not a valid version-1 ring of len bytes
 * (or its head is not 8-aligned). */
static inline int ms_ring_attach(struct ms_ring *r, void *mem, size_t len)
{
    struct ms_ring_header *h = (struct ms_ring_header *)mem;
    if (len < MS_RING_HEADER_SIZE ||
        atomic_load_explicit(&h->magic, memory_order_acquire) != MS_RING_MAGIC ||
        h->version != MS_RING_VERSION || h->header_size != MS_RING_HEADER_SIZE ||
        h->data_size != (uint64_t)len - MS_RING_HEADER_SIZE || !ms_is_pow2(h->data_size) ||
        h->max_record_size % 8u || h->max_record_size < MS_RING_MIN_MAX_RECORD ||
        h->max_record_size > h->data_size / 2u || h->max_record_size > MS_RING_MAX_MAX_RECORD ||
        atomic_load_explicit(&h->head, memory_order_relaxed) % 8u)
        return -1;
    memset(r, 0, sizeof(*r));
    r->hdr = h;
    r->data = (uint8_t *)mem + MS_RING_HEADER_SIZE;
    r->data_size = h->data_size;
    r->mask = h->data_size - 1u;
    r->max_record_size = h->max_record_size;
    r->head = atomic_load_explicit(&h->head, memory_order_relaxed);
    r->tail_cache = atomic_load_explicit(&h->tail, memory_order_acquire);
    r->next_seq = atomic_load_explicit(&h->next_seq, memory_order_relaxed);
    r->lost_full = atomic_load_explicit(&h->lost_full, memory_order_relaxed);
    r->lost_too_big = atomic_load_explicit(&h->lost_too_big, memory_order_relaxed);
    r->polls = atomic_load_explicit(&h->polls, memory_order_relaxed);
    r->empty_polls = atomic_load_explicit(&h->empty_polls, memory_order_relaxed);
    return 0;
}

/* Counts one dropped record (seq consumed) and publishes the counters. */
static inline int ms_ring_drop(struct ms_ring *r, int cause)
{
    r->next_seq++;
    if (cause == MS_RING_LOST_TOO_BIG) {
        r->lost_too_big++;
        atomic_store_explicit(&r->hdr->lost_too_big, r->lost_too_big, memory_order_release);
    } else {
        r->lost_full++;
        atomic_store_explicit(&r->hdr->lost_full, r->lost_full, memory_order_release);
    }
    atomic_store_explicit(&r->hdr->next_seq, r->next_seq, memory_order_release);
    return cause;
}

/* True when `need` bytes (<= size) fit between head and tail. A tail beyond
 * head (a broken consumer) reads as "no room": never overwrite. */
static inline int ms_ring_has_room(uint64_t head, uint64_t tail, uint64_t need, uint64_t size)
{
    return tail <= head && head - tail <= size - need;
}

/* Reserves `len` bytes (a multiple of 8, including the record header) for one
 * record and assigns it the next sequence number (*seq). Never blocks.
 * Returns a pointer to the record's first byte (8-aligned, len contiguous
 * bytes) or NULL when the record was dropped: *cause is then
 * MS_RING_LOST_TOO_BIG (len > max_record_size or not a multiple of 8) or
 * MS_RING_LOST_FULL (not enough free space); the drop is counted and the
 * sequence number consumed. Must be followed by ms_ring_commit() before the
 * next reserve when it returns non-NULL. */
static inline uint8_t *ms_ring_reserve_quiet(struct ms_ring *r, uint64_t len, uint64_t *seq,
                                             int *cause);
static inline uint8_t *ms_ring_reserve(struct ms_ring *r, uint64_t len, uint64_t *seq, int *cause)
{
    uint8_t *p = ms_ring_reserve_quiet(r, len, seq, cause);
    if (!p)
        ms_ring_drop(r, *cause);
    return p;
}

/* ms_ring_reserve without counting a failure: returns NULL with *cause set
 * and nothing changed, for a caller that decides afterwards whether the
 * record existed at all (then it calls ms_ring_drop(r, *cause) itself). */
static inline uint8_t *ms_ring_reserve_quiet(struct ms_ring *r, uint64_t len, uint64_t *seq,
                                             int *cause)
{
    uint64_t pos, contig, pad = 0;
    if (len > r->max_record_size || (len & 7u) || len < sizeof(struct ms_rec_hdr)) {
        *seq = r->next_seq;
        *cause = MS_RING_LOST_TOO_BIG;
        return NULL;
    }
    pos = r->head & r->mask;
    contig = r->data_size - pos;
    if (len > contig)
        pad = contig;
    /* pad + len <= data_size: pad is nonzero only when pad < len <= data_size / 2. */
    if (!ms_ring_has_room(r->head, r->tail_cache, pad + len, r->data_size)) {
        r->tail_cache = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
        if (!ms_ring_has_room(r->head, r->tail_cache, pad + len, r->data_size)) {
            *seq = r->next_seq;
            *cause = MS_RING_LOST_FULL;
            return NULL;
        }
    }
    if (pad) {
        struct ms_rec_hdr ph;
        ph.len = (uint32_t)pad;
        ph.type = MS_REC_PAD;
        ph.flags = 0;
        memcpy(r->data + pos, &ph, sizeof(ph));
        r->head += pad; /* published together with the record by commit */
        pos = 0;
    }
    *seq = r->next_seq++;
    *cause = MS_RING_OK;
    r->pending_len = (uint32_t)len;
    return r->data + pos;
}

/* Publishes the record reserved last (and any PAD before it): stores
 * next_seq, then head with release. */
static inline void ms_ring_commit(struct ms_ring *r)
{
    r->head += r->pending_len;
    r->pending_len = 0;
    atomic_store_explicit(&r->hdr->next_seq, r->next_seq, memory_order_release);
    atomic_store_explicit(&r->hdr->head, r->head, memory_order_release);
}

/* Abandons the record reserved last, before its commit: its sequence number
 * is given back, so no gap appears. A PAD record written before it (at the
 * end of the data area) stays and is published with the next commit. */
static inline void ms_ring_cancel(struct ms_ring *r)
{
    r->next_seq--;
    r->pending_len = 0;
}

/* Writes a batch record's fixed part (header, seq, tsc, sizes) at `p`. */
static inline void ms_write_batch_head(uint8_t *p, uint64_t len, uint32_t flags, uint64_t seq,
                                       uint64_t tsc, uint16_t requested, uint16_t count)
{
    struct ms_batch_rec b;
    b.h.len = (uint32_t)len;
    b.h.type = MS_REC_BATCH;
    b.h.flags = (uint16_t)flags;
    b.seq = seq;
    b.tsc = tsc;
    b.requested = requested;
    b.count = count;
    b.reserved = 0;
    memcpy(p, &b, sizeof(b));
}

/* Reserves a batch record of `count` packets with `flags` (MS_BATCH_F_*) and
 * fills its fixed part; the caller fills s->ipids (and s->non_ipv4 bits,
 * s->tuples when flagged) and then calls ms_ring_commit(). Alignment padding
 * and the bitmap are pre-zeroed.
 * Returns MS_RING_OK, MS_RING_LOST_FULL or MS_RING_LOST_TOO_BIG (dropped and
 * counted; nothing to commit). */
static inline int ms_ring_reserve_batch_ex(struct ms_ring *r, uint64_t tsc, uint16_t requested,
                                           uint16_t count, uint32_t flags,
                                           struct ms_batch_slots *s, int count_drop);
static inline int ms_ring_reserve_batch(struct ms_ring *r, uint64_t tsc, uint16_t requested,
                                        uint16_t count, uint32_t flags, struct ms_batch_slots *s)
{
    return ms_ring_reserve_batch_ex(r, tsc, requested, count, flags, s, 1);
}

/* ms_ring_reserve_batch; with count_drop 0 a failure is not counted (see
 * ms_ring_reserve_quiet). */
static inline int ms_ring_reserve_batch_ex(struct ms_ring *r, uint64_t tsc, uint16_t requested,
                                           uint16_t count, uint32_t flags,
                                           struct ms_batch_slots *s, int count_drop)
{
    uint64_t len, seq, off;
    uint8_t *p;
    int cause;
    s->seq = 0;
    s->ipids = NULL;
    s->non_ipv4 = NULL;
    s->tuples = NULL;
    flags &= MS_BATCH_F_ALL;
    len = ms_batch_len(count, flags);
    p = count_drop ? ms_ring_reserve(r, len, &seq, &cause) : ms_ring_reserve_quiet(r, len, &seq, &cause);
    if (!p)
        return cause;
    ms_write_batch_head(p, len, flags, seq, tsc, requested, count);
    off = sizeof(struct ms_batch_rec);
    s->seq = seq;
    s->ipids = (uint16_t *)(void *)(p + off);
    /* zero the alignment padding after the ipids */
    memset(p + off + (uint64_t)count * 2u, 0, ms_align8((uint64_t)count * 2u) - (uint64_t)count * 2u);
    off += ms_align8((uint64_t)count * 2u);
    s->non_ipv4 = NULL;
    if (flags & MS_BATCH_F_NON_IPV4) {
        uint64_t words = ((uint64_t)count + 63u) / 64u;
        s->non_ipv4 = (uint64_t *)(void *)(p + off);
        memset(p + off, 0, words * 8u);
        off += words * 8u;
    }
    s->tuples = NULL;
    if (flags & MS_BATCH_F_TUPLES) {
        uint64_t tl = (uint64_t)count * MS_TUPLE_LEN;
        s->tuples = p + off;
        memset(p + off + tl, 0, ms_align8(tl) - tl);
    }
    return MS_RING_OK;
}

/* Shrinks the batch record reserved last (by ms_ring_reserve_batch with
 * `count` packets and `flags`), before its commit, to its first `keep`
 * packets (0 < keep <= count) and to `new_flags` (a subset of `flags`: a
 * bitmap with no bit set can be dropped): the bitmap and tuples move down,
 * padding and bits beyond `keep` are cleared, the record's length, flags and
 * count are updated. *s points into the shrunk record afterwards. */
static inline void ms_ring_shrink_batch(struct ms_ring *r, struct ms_batch_slots *s,
                                        uint16_t count, uint16_t keep, uint32_t flags,
                                        uint32_t new_flags)
{
    uint8_t *rec = (uint8_t *)s->ipids - sizeof(struct ms_batch_rec);
    uint8_t *q = (uint8_t *)s->ipids;
    struct ms_batch_rec b;
    flags &= MS_BATCH_F_ALL;
    new_flags &= flags;
    if (keep > count)
        keep = count;
    if (keep == count && new_flags == flags)
        return;
    memset(q + (uint64_t)keep * 2u, 0, ms_align8((uint64_t)keep * 2u) - (uint64_t)keep * 2u);
    q += ms_align8((uint64_t)keep * 2u);
    if (new_flags & MS_BATCH_F_NON_IPV4) {
        uint64_t words = ((uint64_t)keep + 63u) / 64u;
        memmove(q, s->non_ipv4, words * 8u);
        s->non_ipv4 = (uint64_t *)(void *)q;
        if (keep % 64u)
            s->non_ipv4[words - 1] &= (UINT64_C(1) << (keep % 64u)) - 1u;
        q += words * 8u;
    } else {
        s->non_ipv4 = NULL;
    }
    if (new_flags & MS_BATCH_F_TUPLES) {
        uint64_t tl = (uint64_t)keep * MS_TUPLE_LEN;
        memmove(q, s->tuples, tl);
        s->tuples = q;
        memset(q + tl, 0, ms_align8(tl) - tl);
    }
    memcpy(&b, rec, sizeof(b));
    b.h.len = (uint32_t)ms_batch_len(keep, new_flags);
    b.h.flags = (uint16_t)new_flags;
    b.count = keep;
    memcpy(rec, &b, sizeof(b));
    r->pending_len = b.h.len;
}

/* Copies one batch into the ring: `ipids` (count entries), optional
 * `non_ipv4` bitmap ((count + 63) / 64 words; NULL = all IPv4; bits at or
 * beyond count are ignored) and optional packed `tuples` (13 * count bytes;
 * NULL = none). Returns MS_RING_OK, MS_RING_LOST_FULL or MS_RING_LOST_TOO_BIG. */
static inline int ms_ring_put_batch(struct ms_ring *r, uint64_t tsc, uint16_t requested,
                                    uint16_t count, const uint16_t *ipids,
                                    const uint64_t *non_ipv4, const uint8_t *tuples)
{
    struct ms_batch_slots s;
    uint32_t flags = (non_ipv4 ? MS_BATCH_F_NON_IPV4 : 0u) | (tuples ? MS_BATCH_F_TUPLES : 0u);
    int rc = ms_ring_reserve_batch(r, tsc, requested, count, flags, &s);
    if (rc != MS_RING_OK)
        return rc;
    if (count)
        memcpy(s.ipids, ipids, (size_t)count * 2u);
    if (non_ipv4 && count) {
        uint32_t words = ((uint32_t)count + 63u) / 64u, i;
        for (i = 0; i < words; i++)
            s.non_ipv4[i] = non_ipv4[i];
        if (count % 64u)
            s.non_ipv4[words - 1] &= (UINT64_C(1) << (count % 64u)) - 1u;
    }
    if (tuples && count)
        memcpy(s.tuples, tuples, (size_t)count * MS_TUPLE_LEN);
    ms_ring_commit(r);
    return MS_RING_OK;
}

/* Writes a clock anchor: simultaneous TSC and CLOCK_MONOTONIC readings.
 * Returns MS_RING_OK or MS_RING_LOST_FULL. */
static inline int ms_ring_put_anchor(struct ms_ring *r, uint64_t tsc, uint64_t mono_ns)
{
    struct ms_anchor_rec a;
    uint64_t seq;
    int cause;
    uint8_t *p = ms_ring_reserve(r, sizeof(a), &seq, &cause);
    if (!p)
        return cause;
    a.h.len = sizeof(a);
    a.h.type = MS_REC_ANCHOR;
    a.h.flags = 0;
    a.seq = seq;
    a.tsc = tsc;
    a.mono_ns = mono_ns;
    memcpy(p, &a, sizeof(a));
    ms_ring_commit(r);
    return MS_RING_OK;
}

/* Counts one rx poll (nb_rx packets returned); empty polls are also counted
 * in empty_polls. Used for utilization estimation; records nothing. */
static inline void ms_ring_note_poll(struct ms_ring *r, uint16_t nb_rx)
{
    r->polls++;
    atomic_store_explicit(&r->hdr->polls, r->polls, memory_order_release);
    if (nb_rx == 0) {
        r->empty_polls++;
        atomic_store_explicit(&r->hdr->empty_polls, r->empty_polls, memory_order_release);
    }
}

#ifndef MS_RING_NO_POSIX
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Creates the ring file `path` (replacing an existing one atomically):
 * writes "<path>.tmp.<pid>" with mode 0600 — or 0660 and group `gid` when
 * gid >= 0 — never world-accessible, sizes it to 4096 + data_size, maps it
 * shared, formats it, then renames it to `path`, so a consumer never sees a
 * half-made ring. data_size must be a power of two >= 4096; max_record_size 0
 * picks the default. On success fills `r` (keep the mapping until
 * ms_ring_close). Not for the hot path (system calls).
 * Returns 0 or a negative errno (-EINVAL for bad sizes, -ENAMETOOLONG for a
 * too long path, else the failing call's errno). */
static inline int ms_ring_create_file(const char *path, const struct ms_ring_identity *id,
                                      uint64_t data_size, uint32_t max_record_size, long gid,
                                      struct ms_ring *r)
{
    char tmp[4096];
    int fd, n, err;
    size_t len;
    void *mem;
    if (!ms_is_pow2(data_size) || data_size < MS_RING_MIN_DATA_SIZE ||
        data_size > (UINT64_C(1) << 40))
        return -EINVAL;
    len = (size_t)(MS_RING_HEADER_SIZE + data_size);
    n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    (void)unlink(tmp);
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    if (gid >= 0 && (fchown(fd, (uid_t)-1, (gid_t)gid) != 0 || fchmod(fd, 0660) != 0))
        goto fail;
    if (ftruncate(fd, (off_t)len) != 0)
        goto fail;
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        goto fail;
    if (ms_ring_format(mem, len, id, max_record_size) != 0 || ms_ring_attach(r, mem, len) != 0) {
        munmap(mem, len);
        close(fd);
        unlink(tmp);
        return -EINVAL;
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        munmap(mem, len);
        close(fd);
        unlink(tmp);
        return -err;
    }
    close(fd);
    r->map = mem;
    r->map_len = len;
    return 0;
fail:
    err = errno;
    close(fd);
    unlink(tmp);
    return -err;
}

/* Unmaps a ring created by ms_ring_create_file. The file stays (the dumper
 * drains what is left); remove it with unlink() once no longer wanted. */
static inline void ms_ring_close(struct ms_ring *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    memset(r, 0, sizeof(*r));
}
#endif /* MS_RING_NO_POSIX */

#endif /* MICROSCOPE_RING_H */
