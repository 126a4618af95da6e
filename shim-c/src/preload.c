/*
 * preload.c — the LD_PRELOAD entry point (only in libmicroscope_shim.so).
 *
 * rte_eth_rx_burst/tx_burst are inline in every DPDK application, so they
 * cannot be interposed. rte_eth_dev_start is a real exported function that
 * every application calls once per port before forwarding: we define it
 * here, call DPDK's own through its versioned symbol, and attach to the
 * port once it is started. rte_eth_dev_stop likewise: before DPDK's own
 * runs (no lcore may poll a port being stopped), the records the port's
 * streams hold back are published (microscope_flush). Applications linked statically against DPDK
 * resolve the call inside their own binary: for them, link
 * libmicroscope_shim.a and call microscope_attach() instead.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "microscope_shim.h"
#include "shim_internal.h"

typedef int (*ms_start_fn)(uint16_t);
typedef int (*ms_stop_fn)(uint16_t);

/* Symbol versions of librte_ethdev's rte_eth_dev_start, newest ABI we know
 * of first; the plain dlsym is the last resort (unversioned builds). */
static const char *const ms_versions[] = {"DPDK_23", "DPDK_24", "DPDK_25", "DPDK_26", "DPDK_22"};

/* DPDK's own `name` (versioned), cached in *cache. */
static void *ms_real(void **cache, const char *name)
{
    void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    size_t i;
    if (f)
        return f;
    for (i = 0; i < sizeof(ms_versions) / sizeof(ms_versions[0]) && !f; i++)
        f = dlvsym(RTLD_NEXT, name, ms_versions[i]);
    if (!f)
        f = dlsym(RTLD_NEXT, name);
    __atomic_store_n(cache, f, __ATOMIC_RELEASE);
    return f;
}

static ms_start_fn ms_real_start(void)
{
    static void *real;
    return (ms_start_fn)ms_real(&real, "rte_eth_dev_start");
}

static ms_stop_fn ms_real_stop(void)
{
    static void *real;
    return (ms_stop_fn)ms_real(&real, "rte_eth_dev_stop");
}

MS_API int rte_eth_dev_stop(uint16_t port_id)
{
    ms_stop_fn real = ms_real_stop();
    if (!real) {
        fprintf(stderr, "microscope-shim: rte_eth_dev_stop not found after the preload "
                        "library (is the application linked against librte_ethdev.so?)\n");
        return -ENOSYS;
    }
    microscope_flush(port_id);
    return real(port_id);
}

MS_API int rte_eth_dev_start(uint16_t port_id)
{
    ms_start_fn real = ms_real_start();
    int rc, arc;
    if (!real) {
        fprintf(stderr, "microscope-shim: rte_eth_dev_start not found after the preload "
                        "library (is the application linked against librte_ethdev.so?)\n");
        return -ENOSYS;
    }
    rc = real(port_id);
    if (rc != 0)
        return rc;
    arc = microscope_attach(port_id);
    if (arc != 0)
        fprintf(stderr, "microscope-shim: attaching to port %u: %s (the port runs, partly "
                        "unrecorded)\n", port_id, strerror(-arc));
    return rc;
}
