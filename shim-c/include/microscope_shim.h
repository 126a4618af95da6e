/*
 * microscope_shim.h — the vendor-facing API of Microscope's DPDK shim.
 *
 * Two ways in:
 *   1. LD_PRELOAD=libmicroscope_shim.so: nothing to call. The library
 *      interposes rte_eth_dev_start() and attaches to every port it starts.
 *   2. Link libmicroscope_shim.a (plus `pkg-config --libs libdpdk`, -ldl)
 *      and call microscope_attach(port) right after each rte_eth_dev_start().
 *
 * What attaching does, per port: one rx stream per rx queue (an rx callback
 * that records, per non-empty burst, one TSC timestamp, the batch size, the
 * requested burst size and every packet's IPv4 identification), one tx
 * stream per tx queue (a wrapper around the driver's tx burst function that
 * records only the packets the driver accepted), each written into its own
 * shared-memory ring (microscope_ring.h) that `microscope dump --rings DIR`
 * drains. Configuration comes from the environment (see shim-c/README.md):
 * MICROSCOPE_RING_DIR, MICROSCOPE_NF_NAME, MICROSCOPE_NF_TYPE,
 * MICROSCOPE_NF_ROLE, MICROSCOPE_TUPLE_PORTS, MICROSCOPE_YIELD,
 * MICROSCOPE_RING_SIZE, MICROSCOPE_ANCHOR_US, MICROSCOPE_PUBLISH_BYTES,
 * MICROSCOPE_TX_HOOK, MICROSCOPE_DISABLE, MICROSCOPE_QUIET.
 *
 * Thread-safety: microscope_attach/microscope_shutdown are control-path
 * calls (take a lock, create files, print); call them from the thread that
 * starts ports, not from a forwarding lcore. The recording itself runs on
 * whichever lcore polls the queue, one lcore per queue as DPDK requires.
 */
#ifndef MICROSCOPE_SHIM_H
#define MICROSCOPE_SHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Attaches to every configured rx and tx queue of a started port. Idempotent:
 * a queue already attached keeps its stream (and its ring) across
 * rte_eth_dev_stop/start; the tx wrapper is re-applied, because starting a
 * port resets the driver's fast-path function table. Call it again after
 * every rte_eth_dev_start of the port.
 *
 * Returns 0 on success (also when MICROSCOPE_DISABLE is set: nothing is
 * recorded), or a negative errno:
 *   -ENODEV    port_id is not a valid port
 *   -ERANGE    port_id >= RTE_MAX_ETHPORTS of the build, or the port has
 *              more queues than the shim supports (MICROSCOPE_MAX_QUEUES;
 *              the extra queues are not recorded, the others are)
 *   -EAGAIN    the port is not started (no driver tx function yet)
 *   -ENOMEM    no memory for the port's stream table
 *   other      the errno of creating a ring file (open/ftruncate/mmap/rename)
 *              or of rte_eth_add_rx_callback / rte_eth_add_tx_callback
 */
int microscope_attach(uint16_t port_id);

/*
 * Writes a final clock anchor on every open stream and publishes it with
 * every record held back and the counters. The rings stay mapped and
 * attached (recording continues if the NF keeps polling); ring files are
 * left for the dumper to drain. Call it once the forwarding lcores stopped
 * (a second writer would break a ring's single-producer rule); it does NOT
 * run at process exit for that reason. Safe to call more than once.
 */
void microscope_shutdown(void);

/*
 * Publishes the records held back on the port's streams. Streams store the
 * ring head (what the dumper may read) once MICROSCOPE_PUBLISH_BYTES (4 KiB)
 * of records accumulated, at each clock anchor, and on an empty rx poll of
 * the thread that wrote them, not after every burst (see shim-c/README.md);
 * call this before rte_eth_dev_stop(port), when no lcore polls the port any
 * more (the LD_PRELOAD library does it in its rte_eth_dev_stop).
 */
void microscope_flush(uint16_t port_id);

/* Totals over all of this process's streams, for tests and NF statistics. */
struct microscope_stats {
    uint64_t streams;      /* rings created */
    uint64_t batches;      /* batch records committed */
    uint64_t packets;      /* packets in committed batch records */
    uint64_t anchors;      /* clock anchors committed */
    uint64_t lost_full;    /* records dropped: ring full */
    uint64_t lost_too_big; /* records dropped: larger than a ring slot */
};

/* Fills *out with the current totals (a racy but monotone snapshot). */
void microscope_stats(struct microscope_stats *out);

/* The directory rings are written to (after the first attach), or NULL. */
const char *microscope_ring_dir(void);

#define MICROSCOPE_MAX_QUEUES 64

#ifdef __cplusplus
}
#endif

#endif /* MICROSCOPE_SHIM_H */
