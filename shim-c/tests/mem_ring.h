/* A ring formatted in plain memory, for the shim's tests and bench: no file,
 * no shared memory, same layout. Exits with a message naming `who` when the
 * ring cannot be set up. */
#ifndef MICROSCOPE_TESTS_MEM_RING_H
#define MICROSCOPE_TESTS_MEM_RING_H

#include <stdio.h>
#include <stdlib.h>

#include "microscope_ring.h"

static inline void *ms_test_mem_ring(struct ms_ring *r, size_t data_size, uint8_t dir,
                                     const char *who)
{
    size_t len = MS_RING_HEADER_SIZE + data_size;
    void *mem = aligned_alloc(4096, len);
    struct ms_ring_identity id = {0};
    id.nf_name = who;
    id.nf_type = who;
    id.host = who;
    id.role = MS_ROLE_NF;
    id.direction = dir;
    if (!mem || ms_ring_format(mem, len, &id, 0) || ms_ring_attach(r, mem, len)) {
        fprintf(stderr, "%s: cannot set up a ring in memory\n", who);
        exit(1);
    }
    return mem;
}

#endif
