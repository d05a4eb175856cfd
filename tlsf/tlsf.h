/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * tlsf/tlsf.h
 *
 * C API of fmemp's TLSF heap, source-compatible with the reference TLSF 3.1
 * API that the SDK's code calls (same names, argument order and meaning), as
 * a thin layer over fmemp::tlsf::Heap (tlsf/heap.h). Usable from C and C++.
 *
 * Differences from the reference, all of them fixes:
 *  - malloc/memalign/realloc of sizes near SIZE_MAX return NULL.
 *  - realloc that cannot be satisfied returns NULL and leaves the block as it
 *    was; realloc of a block from tlsf_memalign keeps its alignment if it
 *    has to move.
 *  - a freed block is found again by a malloc of the same size.
 *  - free of a block twice, or of a pointer the heap did not hand out, is
 *    detected, reported to the error handler and counted; the heap stays
 *    intact.
 *  - tlsf_remove_pool refuses a pool that still holds live blocks (reported
 *    to the error handler); tlsf_remove_pool_checked says so in its result.
 *  - pool and control memory that is not aligned is aligned inward.
 *  - too-small or too-large buffers give NULL, never a crash.
 *
 * Complexity: malloc, memalign, realloc and free are O(1). Pool calls and
 * checks walk pools or blocks. Thread safety: none; a tlsf_t must be used by
 * one thread at a time (fmemp/fmemp.h adds locking).
 */

#ifndef FMEMP_TLSF_TLSF_H_
#define FMEMP_TLSF_TLSF_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A heap (its control structure) and a pool added to it. */
typedef void* tlsf_t;
typedef void* pool_t;

/* --- Reference TLSF 3.1 API --- */

/* Creates a heap whose control structure occupies tlsf_size() bytes at mem
 * (aligned inward). Returns NULL if mem is NULL. */
tlsf_t tlsf_create(void* mem);
/* Creates a heap at mem and adds the rest of [mem, mem + bytes) as its first
 * pool. Returns NULL if bytes cannot hold tlsf_size() plus a minimum pool. */
tlsf_t tlsf_create_with_pool(void* mem, size_t bytes);
/* Ends the heap. Its memory (and its pools') may be reused afterwards. */
void tlsf_destroy(tlsf_t tlsf);
/* The pool created by tlsf_create_with_pool, or NULL. */
pool_t tlsf_get_pool(tlsf_t tlsf);

/* Adds [mem, mem + bytes) as a pool; NULL if it is too small, too large,
 * overlaps a pool of this heap, the heap already has 64 pools
 * (fmemp::tlsf::Heap::kMaxPools: the heap keeps every pool's bounds in its
 * control structure, never in pool memory), or tlsf is NULL. */
pool_t tlsf_add_pool(tlsf_t tlsf, void* mem, size_t bytes);
/* Removes a pool. Refused (and reported to the error handler) while the pool
 * holds live blocks or when it is not a pool of tlsf. */
void tlsf_remove_pool(tlsf_t tlsf, pool_t pool);

/* Allocation. NULL on failure, on a NULL tlsf, or (memalign) when align is
 * not a power of two. malloc(0) returns a unique minimum block. */
void* tlsf_malloc(tlsf_t tlsf, size_t bytes);
void* tlsf_memalign(tlsf_t tlsf, size_t align, size_t bytes);
/* realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns NULL. */
void* tlsf_realloc(tlsf_t tlsf, void* ptr, size_t size);
void tlsf_free(tlsf_t tlsf, void* ptr);

/* Usable bytes of a live block returned by this API (not validated). */
size_t tlsf_block_size(void* ptr);

/* Sizes of the implementation. */
size_t tlsf_size(void);           /* control structure, with alignment slack */
size_t tlsf_align_size(void);     /* payload alignment */
size_t tlsf_block_size_min(void); /* usable bytes of the smallest block */
size_t tlsf_block_size_max(void); /* largest request that can succeed */
size_t tlsf_pool_overhead(void);  /* bytes of an aligned pool not usable */
size_t tlsf_alloc_overhead(void); /* bytes of overhead per allocation */

/* Calls walker for every block of pool, in address order. */
typedef void (*tlsf_walker)(void* ptr, size_t size, int used, void* user);
void tlsf_walk_pool(pool_t pool, tlsf_walker walker, void* user);

/* Integrity checks: 0 when sound, -1 when a problem was found (described on
 * stderr). They never abort and never loop on a corrupted heap. */
int tlsf_check(tlsf_t tlsf);
int tlsf_check_pool(pool_t pool);

/* --- Extensions --- */

/* Counters kept on every operation (see tlsf/heap.h for their meaning). */
typedef struct tlsf_stats {
  size_t capacity_bytes;
  size_t used_bytes;
  size_t free_bytes;
  size_t live_blocks;
  size_t peak_used_bytes;
  size_t pool_count;
  unsigned long long failed_allocations;
  unsigned long long invalid_frees;
} tlsf_stats_t;

/* Fills *stats; O(1). Does nothing if either argument is NULL. */
void tlsf_get_stats(tlsf_t tlsf, tlsf_stats_t* stats);
/* Resets the peak to the current used bytes. */
void tlsf_reset_peak(tlsf_t tlsf);
/* The largest n for which tlsf_malloc(tlsf, n) succeeds now (0 if none). */
size_t tlsf_largest_allocatable(tlsf_t tlsf);

/* tlsf_remove_pool with a result: 0 removed, -1 refused (live blocks, or not
 * a pool of tlsf); the heap is unchanged when refused. */
int tlsf_remove_pool_checked(tlsf_t tlsf, pool_t pool);

/* Walks pool until walker returns 0. Returns 1 if the walk was stopped. */
typedef int (*tlsf_walker_until)(void* ptr, size_t size, int used, void* user);
int tlsf_walk_pool_until(pool_t pool, tlsf_walker_until walker, void* user);

/* Misuse reports. kind is one of TLSF_ERROR_*. */
enum {
  TLSF_ERROR_INVALID_FREE = 1,
  TLSF_ERROR_DOUBLE_FREE = 2,
  TLSF_ERROR_CORRUPT_HEAP = 3,
  TLSF_ERROR_POOL_NOT_REMOVED = 4
};
typedef void (*tlsf_error_handler)(void* user, int kind, const void* ptr);
/* Installs handler (NULL restores the default: one line on stderr). */
void tlsf_set_error_handler(tlsf_t tlsf, tlsf_error_handler handler,
                            void* user);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FMEMP_TLSF_TLSF_H_ */
