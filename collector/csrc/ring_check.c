/*
 * Test support compiled by collector/build.rs: exports the C view of the ring
 * layout (offsets and sizes from microscope_ring.h) and thin, non-inline
 * wrappers around the header's static inline producer, so Rust tests and
 * benches can drive the real C producer and compare it with the Rust mirror.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include "microscope_ring.h"

#define F(name) { #name, offsetof(struct ms_ring_header, name) }
static const struct { const char *name; size_t value; } ms_fields[] = {
    F(magic), F(version), F(header_size), F(data_size), F(max_record_size), F(flags),
    F(pid), F(role), F(direction), F(port), F(queue), F(created_ns), F(tsc_hz_hint),
    F(nf_name), F(nf_type), F(host), F(head), F(next_seq), F(lost_full), F(lost_too_big),
    F(polls), F(empty_polls), F(tail), F(consumer_cookie), F(consumer_stream),
    F(consumer_pid), F(lost_write), F(lost_corrupt), F(reserved5),
    { "sizeof_header", sizeof(struct ms_ring_header) },
    { "sizeof_rec_hdr", sizeof(struct ms_rec_hdr) },
    { "sizeof_batch_rec", sizeof(struct ms_batch_rec) },
    { "batch_seq", offsetof(struct ms_batch_rec, seq) },
    { "batch_tsc", offsetof(struct ms_batch_rec, tsc) },
    { "batch_requested", offsetof(struct ms_batch_rec, requested) },
    { "batch_count", offsetof(struct ms_batch_rec, count) },
    { "sizeof_anchor_rec", sizeof(struct ms_anchor_rec) },
    { "anchor_seq", offsetof(struct ms_anchor_rec, seq) },
    { "anchor_tsc", offsetof(struct ms_anchor_rec, tsc) },
    { "anchor_mono_ns", offsetof(struct ms_anchor_rec, mono_ns) },
};
#undef F

/* Number of layout entries. */
size_t ms_check_layout_len(void) { return sizeof(ms_fields) / sizeof(ms_fields[0]); }

/* Entry i: its name (static string) and value. Returns NULL past the end. */
const char *ms_check_layout_entry(size_t i, size_t *value)
{
    if (i >= ms_check_layout_len())
        return NULL;
    *value = ms_fields[i].value;
    return ms_fields[i].name;
}

#define C(name) { #name, (uint64_t)(name) }
static const struct { const char *name; uint64_t value; } ms_consts[] = {
    C(MS_RING_MAGIC), C(MS_RING_VERSION), C(MS_RING_HEADER_SIZE), C(MS_RING_MIN_DATA_SIZE),
    C(MS_RING_MIN_MAX_RECORD), C(MS_RING_MAX_MAX_RECORD), C(MS_RING_NAME_LEN),
    C(MS_RING_F_CARRIES_TUPLES), C(MS_ROLE_SOURCE), C(MS_ROLE_NF), C(MS_ROLE_SINK),
    C(MS_DIR_RX), C(MS_DIR_TX), C(MS_REC_BATCH), C(MS_REC_ANCHOR), C(MS_REC_PAD),
    C(MS_BATCH_F_NON_IPV4), C(MS_BATCH_F_TUPLES), C(MS_TUPLE_LEN),
};
#undef C

/* Constant i: its name (static string) and value. Returns NULL past the end. */
const char *ms_check_const_entry(size_t i, uint64_t *value)
{
    if (i >= sizeof(ms_consts) / sizeof(ms_consts[0]))
        return NULL;
    *value = ms_consts[i].value;
    return ms_consts[i].name;
}

/* Constants the Rust side mirrors: magic, version, header size. */
uint64_t ms_check_magic(void) { return MS_RING_MAGIC; }
uint32_t ms_check_version(void) { return MS_RING_VERSION; }
uint64_t ms_check_batch_len(uint32_t count, uint32_t flags) { return ms_batch_len(count, flags); }

/* Creates a ring file with ms_ring_create_file; returns a heap handle or
 * NULL (errno-style code in *err). */
struct ms_ring *ms_check_create(const char *path, const char *nf_name, const char *nf_type,
                                const char *host, uint8_t role, uint8_t direction,
                                uint16_t port, uint16_t queue, int carries_tuples, uint32_t pid,
                                uint64_t created_ns, uint64_t tsc_hz_hint, uint64_t data_size,
                                uint32_t max_record_size, long gid, int *err)
{
    struct ms_ring_identity id;
    struct ms_ring *r = calloc(1, sizeof(*r));
    if (!r) {
        *err = -12;
        return NULL;
    }
    id.nf_name = nf_name;
    id.nf_type = nf_type;
    id.host = host;
    id.role = role;
    id.direction = direction;
    id.port = port;
    id.queue = queue;
    id.carries_tuples = carries_tuples;
    id.pid = pid;
    id.created_ns = created_ns;
    id.tsc_hz_hint = tsc_hz_hint;
    *err = ms_ring_create_file(path, &id, data_size, max_record_size, gid, r);
    if (*err) {
        free(r);
        return NULL;
    }
    return r;
}

int ms_check_put_batch(struct ms_ring *r, uint64_t tsc, uint16_t requested, uint16_t count,
                       const uint16_t *ipids, const uint64_t *non_ipv4, const uint8_t *tuples,
                       uint64_t *seq)
{
    int rc = ms_ring_put_batch(r, tsc, requested, count, ipids, non_ipv4, tuples);
    *seq = r->next_seq - 1;
    return rc;
}

/* Same through reserve/fill/commit (the shim's zero-copy path). */
int ms_check_reserve_batch(struct ms_ring *r, uint64_t tsc, uint16_t requested, uint16_t count,
                           const uint16_t *ipids, const uint64_t *non_ipv4, const uint8_t *tuples,
                           uint64_t *seq)
{
    struct ms_batch_slots s;
    uint32_t flags = (non_ipv4 ? MS_BATCH_F_NON_IPV4 : 0u) | (tuples ? MS_BATCH_F_TUPLES : 0u);
    uint32_t i;
    int rc = ms_ring_reserve_batch(r, tsc, requested, count, flags, &s);
    *seq = r->next_seq - 1;
    if (rc != MS_RING_OK)
        return rc;
    for (i = 0; i < count; i++) {
        s.ipids[i] = ipids[i];
        if (non_ipv4 && (non_ipv4[i / 64u] >> (i % 64u) & 1u))
            s.non_ipv4[i / 64u] |= UINT64_C(1) << (i % 64u);
        if (tuples)
            memcpy(s.tuples + (size_t)i * MS_TUPLE_LEN, tuples + (size_t)i * MS_TUPLE_LEN,
                   MS_TUPLE_LEN);
    }
    ms_ring_commit(r);
    return MS_RING_OK;
}

int ms_check_put_anchor(struct ms_ring *r, uint64_t tsc, uint64_t mono_ns, uint64_t *seq)
{
    int rc = ms_ring_put_anchor(r, tsc, mono_ns);
    *seq = r->next_seq - 1;
    return rc;
}

void ms_check_note_poll(struct ms_ring *r, uint16_t nb_rx) { ms_ring_note_poll(r, nb_rx); }

void ms_check_tuple_pack(uint8_t *out, uint32_t src_ip, uint32_t dst_ip, uint16_t src_port,
                         uint16_t dst_port, uint8_t proto)
{
    ms_tuple_pack(out, src_ip, dst_ip, src_port, dst_port, proto);
}

void ms_check_close(struct ms_ring *r)
{
    if (r) {
        ms_ring_close(r);
        free(r);
    }
}
