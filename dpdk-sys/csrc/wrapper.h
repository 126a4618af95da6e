/*
 * dpdk-sys/csrc/wrapper.h — the one header the Rust bindings are generated
 * from (by build.rs, with bindgen, against the DPDK headers pkg-config finds).
 *
 * DPDK's fast-path API (rte_eth_rx_burst, rte_pktmbuf_alloc, rte_rdtsc,
 * rte_lcore_id, ...) is `static inline`: there is no symbol to bind to. Each
 * such function we need gets an out-of-line twin `dpdk_sys_<name>` declared
 * here and defined in wrapper.c (compiled with `cc` under
 * `pkg-config --cflags libdpdk`). The Rust crate re-exports the twins under
 * the original DPDK names.
 */
#ifndef DPDK_SYS_WRAPPER_H
#define DPDK_SYS_WRAPPER_H

#include <rte_config.h>
#include <rte_version.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <rte_bus_vdev.h>
#include <rte_malloc.h>

/* ethdev fast path */
uint16_t dpdk_sys_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t dpdk_sys_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbufs */
struct rte_mbuf *dpdk_sys_rte_pktmbuf_alloc(struct rte_mempool *mp);
int dpdk_sys_rte_pktmbuf_alloc_bulk(struct rte_mempool *pool,
                                    struct rte_mbuf **mbufs, unsigned count);
void dpdk_sys_rte_pktmbuf_free(struct rte_mbuf *m);
/* Pointer to the first data byte (rte_pktmbuf_mtod). */
void *dpdk_sys_rte_pktmbuf_mtod(struct rte_mbuf *m);
/* Appends len bytes; NULL when the segment has no room (rte_pktmbuf_append). */
char *dpdk_sys_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/* Resets data_off/len fields (rte_pktmbuf_reset). */
void dpdk_sys_rte_pktmbuf_reset(struct rte_mbuf *m);
uint16_t dpdk_sys_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t dpdk_sys_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
/* Sets data_len and pkt_len of a single-segment mbuf. */
void dpdk_sys_rte_pktmbuf_set_len(struct rte_mbuf *m, uint16_t len);

/* time, lcores, errno */
uint64_t dpdk_sys_rte_rdtsc(void);
unsigned dpdk_sys_rte_lcore_id(void);
int dpdk_sys_rte_errno(void);
void dpdk_sys_rte_pause(void);

#endif
