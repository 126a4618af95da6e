/* shim_internal.h — functions of shim.c exposed to the shim's own C tests,
 * not part of the vendor API (microscope_shim.h). */
#ifndef MICROSCOPE_SHIM_INTERNAL_H
#define MICROSCOPE_SHIM_INTERNAL_H

#include <stdint.h>

/* Exported from libmicroscope_shim.so (built with -fvisibility=hidden). */
#define MS_API __attribute__((visibility("default")))

/* Parses an Ethernet frame (up to two VLAN tags) of `len` readable bytes.
 * Returns 1 for IPv4 and stores the identification (host order) in *ipid
 * and, when `tuple` is non-NULL, the packed 13-byte 5-tuple (ports 0 for
 * non-TCP/UDP/SCTP, non-first fragments and truncated L4 headers).
 * Returns 0, touching nothing, for anything else (non-IPv4, truncated). */
int ms_parse_packet(const uint8_t *d, uint32_t len, uint16_t *ipid, uint8_t *tuple);

/* Parses MICROSCOPE_TUPLE_PORTS syntax ("0,2", "all", "none", "") into a
 * bitmask of ports 0..63; bad tokens are reported on stderr and skipped. */
uint64_t ms_parse_ports(const char *s);

#endif
