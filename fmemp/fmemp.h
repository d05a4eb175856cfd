/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * fmemp/fmemp.h
 *
 * The SDK memory pool C API (FMemp over TLSF), source-compatible with the
 * SDK's fmemory_pool.h, over fmemp's C++ front-ends (fmemp/memp.h,
 * fmemp/thread_cache.h, fmemp/thread_heap.h; fmemp/policy_table.h maps a
 * policy to one). Code
 * written for the SDK compiles unchanged: include this header or the SDK's
 * names for it ("fmemory_pool.h", "fmempory_pool.h").
 *
 * Thread safety: every function may be called concurrently on the same
 * FMemp from many threads. FMempInit uses FMEMP_POLICY_THREAD_CACHE, the
 * fastest thread-safe policy (per-thread caches of small blocks over
 * spin-locked regions); FMempInitWithPolicy picks another. With
 * FMEMP_POLICY_SINGLE_THREAD the caller guarantees one thread at a time.
 *
 * What the default policy changes, against FMEMP_POLICY_MUTEX (the default
 * before 2026-11; choose it with FMempInitWithPolicy to keep these exact):
 * - FMemProbe's max_used is the regions' high-water mark: the most bytes
 *   ever taken from them at once, blocks parked in per-thread caches
 *   included. It is at least the peak of used, and at most that plus what
 *   the caches held (up to 1 MiB per thread). used and live counts exclude
 *   parked blocks (FMempUsage.cached_bytes has them).
 * - A thread's freed small blocks are reused by that thread first, so the
 *   address a malloc returns after a free may differ.
 * - A region's figures (FMempProbeRegion) and the listing (FMemListAll)
 *   first give every cache back to the regions: O(threads).
 * Misuse (a foreign, interior or already freed pointer, a damaged header)
 * is detected and reported at the call, as under FMEMP_POLICY_MUTEX: the
 * bad-input table of docs/HARDENING.md runs under every policy.
 * Under FMEMP_POLICY_THREAD_HEAPS max_used means the same (blocks parked in
 * the thread heaps' caches included) and is the true peak of the shared
 * regions and every thread heap together, not a sum of each heap's peak (one
 * atomic total, changed where blocks leave or return to the regions; a cache
 * hit changes none).
 *
 * fork(): pthread_atfork handlers hold every FMemp's locks across fork()
 * and stop every thread's cache, so in the child of a multi-threaded
 * process the thread that called fork() can keep using every FMemp,
 * FMempDrainThreadCaches included (it returns the parent's other threads'
 * caches too), and threads the child starts can allocate, free and exit
 * under every policy (fmemp_fork_test.cc, also under ASan).
 *
 * Complexity: malloc, calloc, aligned malloc, realloc and free are O(1) (plus
 * O(log regions) to find a pointer's region); FMemProbe is O(1);
 * FMemListAll, FMempCheck and region calls walk regions or blocks.
 *
 * Failure: allocation functions return NULL; management functions return an
 * FError; nothing is changed by a call that fails, and a failing management
 * call (FMempAddRegion, FMempRemoveRegion, FMempBindThread, FMempCheckRegionOf
 * of a pointer in no region, ...) never allocates: its error is a plain value
 * inside the library, so a program whose operator new or malloc is routed
 * into this FMemp may call them. FMempCheck and FMempCheckRegionOf allocate
 * nothing either, even on a damaged heap: they describe the damage on stderr
 * from a fixed-size buffer. A NULL or uninitialised
 * FMemp makes every call return NULL or FMEMP_ERR_NOT_INIT and touch
 * nothing. Freeing (or reallocating) a pointer this FMemp did not hand out,
 * or a block twice, is reported to the error handler (default: one line on
 * stderr), counted, and ignored.
 *
 * Accounting: "used" bytes are the spans of live blocks including each
 * block's one 8-byte header; total = used + free. FMemp's bookkeeping lives
 * outside the caller's buffers, so a small buffer is almost all usable.
 */

#ifndef FMEMP_FMEMP_FMEMP_H_
#define FMEMP_FMEMP_FMEMP_H_

#include <stddef.h>
#include <stdint.h>

#include "tlsf/tlsf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- SDK types ---
 * The SDK's ftypes.h (guard FTYPES_H) and ferror_code.h (guard
 * FERROR_CODE_H) define these; when they are included first, ours step
 * aside, and when they come later, the identical typedefs are legal (C11,
 * C++). So each is spelled exactly as the SDK spells it: `boolean` is
 * `unsigned long` there, and TRUE and FALSE are 1U and 0U (a macro
 * defined twice differently is a warning, an error under -Werror).
 * the ftypes_*_test targets build both orders, as C and as C++, against a copy
 * of ftypes.h (fmemp/sdk/fake_ftypes). */
#ifndef FTYPES_H
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t s32;
typedef uintptr_t uintptr;
typedef size_t fsize_t;
typedef unsigned long boolean;
#ifndef TRUE
#define TRUE 1U
#endif
#ifndef FALSE
#define FALSE 0U
#endif
#ifndef FT_COMPONENT_IS_READY
#define FT_COMPONENT_IS_READY 0x11111111U
#endif
#endif /* FTYPES_H */

#ifndef FERROR_CODE_H
typedef u32 FError;
#endif

#ifndef FSLIST_NODE_DEFINED
#define FSLIST_NODE_DEFINED
typedef struct _FSListNode {
  struct _FSListNode* next;
} FSListNode;
#endif

/* --- Error codes (module 0x0010000, as in the SDK) --- */
#define FMEMP_SUCCESS 0U
#define FMEMP_ERR_INVALID_BUF 0x0010000U  /* bad buffer or region bounds */
#define FMEMP_ERR_INIT_TLFS 0x0010001U    /* the heap could not be built */
#define FMEMP_ERR_BAD_MALLOC 0x0010002U   /* bookkeeping allocation failed */
#define FMEMP_ERR_ALREADY_INIT 0x0010003U /* FMempInit on a ready FMemp */
#define FMEMP_ERR_NOT_INIT 0x0010004U     /* FMemp is NULL or not ready */
#define FMEMP_ERR_REGION_BUSY 0x0010005U  /* region still holds live blocks */
#define FMEMP_ERR_REGION_NOT_FOUND 0x0010006U /* no region begins there */
#define FMEMP_ERR_REGION_OVERLAP 0x0010007U   /* overlaps an existing region */
#define FMEMP_ERR_CORRUPT 0x0010008U          /* integrity check failed */
#define FMEMP_ERR_INVALID_ARG 0x0010009U      /* e.g. NULL output pointer */
#define FMEMP_ERR_NOT_SUPPORTED 0x001000AU    /* the FMemp's policy lacks it */

/* --- The pool ---
 */

/* One node per region, as in the SDK. */
typedef struct {
  pool_t pool_addr;
  FSListNode list;
} FMempPoolList;

/* A memory pool. Zero-initialise it before FMempInit (a zeroed FMemp is "not
 * initialised"). Members beyond the SDK's three are fmemp's own. */
typedef struct {
  FMempPoolList* pools_list; /* node of the region given to FMempInit */
  tlsf_t tlsf_ptr; /* identifies that region's TLSF heap (opaque: use the
                      FMemp* functions on it, not tlsf_*) */
  u32 is_ready;    /* FT_COMPONENT_IS_READY once initialised */
  void* priv;      /* fmemp's front-end, from FMempInit to FMempRemove */
} FMemp;

/* Lock policy of an FMemp (see fmemp/memp.h and sync/). */
typedef enum {
  FMEMP_POLICY_MUTEX = 0,         /* absl::Mutex; exact max_used */
  FMEMP_POLICY_SPINLOCK = 1,      /* short critical sections, few threads */
  FMEMP_POLICY_SINGLE_THREAD = 2, /* no locking; one thread at a time */
  FMEMP_POLICY_THREAD_CACHE = 3,  /* the default (FMempInit): per-thread
                                     caches of small blocks over spin-locked
                                     regions (fmemp/thread_cache.h); the
                                     fastest with one thread or several */
  FMEMP_POLICY_THREAD_HEAPS = 4   /* threads may bind regions of their own
                                     (FMempBindThread) and allocate from them
                                     without a lock; the other regions are
                                     spin-locked (fmemp/thread_heap.h) */
} FMempPolicy;

/* Defined since per-thread heaps (FMempBindThread) exist. */
#define FMEMP_POLICY_THREAD_HEAPS_AVAILABLE 1

/* --- The SDK's API --- */

/* Initialises memp over [begin_addr, end_addr) (bounds aligned inward).
 * FMEMP_ERR_INVALID_BUF: NULL, reversed, empty or too small a range;
 * FMEMP_ERR_ALREADY_INIT: memp is ready; FMEMP_ERR_INVALID_ARG: memp NULL;
 * FMEMP_ERR_BAD_MALLOC: bookkeeping could not be allocated. */
FError FMempInit(FMemp* memp, void* begin_addr, void* end_addr);
/* Releases every region (blocks handed out become invalid) and everything
 * FMempInit created (handlers set since included), and makes memp not
 * ready, as if zeroed; FMempInit may be called on it again. Harmless on a
 * zeroed or removed memp. Must not run concurrently with any other call on
 * memp. */
void FMempRemove(FMemp* memp);
/* The SDK's code calls FMempRemove by this name. */
void FMempDeinit(FMemp* memp);

/* nbytes == 0 returns a unique minimum block. */
void* FMempMalloc(FMemp* memp, fsize_t nbytes);
/* NULL when count * size overflows. */
void* FMempCalloc(FMemp* memp, fsize_t count, fsize_t size);
/* NULL unless align is a power of two (up to 2 GiB). */
void* FMempMallocAlign(FMemp* memp, fsize_t size, fsize_t align);
/* ptr NULL: malloc. nbytes 0: frees ptr, returns NULL. On failure returns
 * NULL and ptr stays valid and unchanged. Keeps an aligned block's
 * alignment when it moves. */
void* FMempRealloc(FMemp* memp, void* ptr, fsize_t nbytes);
/* NULL is a no-op; misuse is reported and ignored. */
void FMempFree(FMemp* memp, void* ptr);

/* total: bytes usable across all regions; used: bytes of live blocks
 * (headers included); max_used: true peak of used since init (under the
 * policies with per-thread caches, FMEMP_POLICY_THREAD_CACHE (the default)
 * and _THREAD_HEAPS, of used + cached bytes, the regions' high-water mark:
 * see the top). Values above
 * 4 GiB saturate at 0xFFFFFFFF (see FMempProbe64). O(1), consistent. Any
 * output may be NULL. */
void FMemProbe(FMemp* memp, u32* total, u32* used, u32* max_used);
/* Prints every region, every live block (with its tag when tagged), the
 * totals and the integrity check to stdout: after flushing stdout, straight
 * to file descriptor 1 with write(2). Allocates nothing (each line is
 * formatted on the stack), so a program whose malloc or operator new is
 * this FMemp may call it. */
void FMemListAll(FMemp* memp);

/* --- Extensions --- */

/* FMemListAll, line by line to sink (each line NUL-terminated, without
 * its newline, valid during the call; a long tag is cut so that a line
 * fits in about 3 KiB). Allocates nothing itself. The sink runs inside the
 * pool's lock and must not call into the same FMemp.
 * FMEMP_ERR_NOT_INIT / FMEMP_ERR_INVALID_ARG (sink NULL). */
typedef void (*FMempLineSink)(void* user, const char* line);
FError FMemListAllTo(FMemp* memp, FMempLineSink sink, void* user);

/* FMempInit with a chosen lock policy. */
FError FMempInitWithPolicy(FMemp* memp, void* begin_addr, void* end_addr,
                           FMempPolicy policy);
/* FMempRemove, under its older name (once the front-end outlived
 * FMempRemove). Harmless after FMempRemove or twice. */
void FMempRelease(FMemp* memp);

/* Adds [begin, end) as another region. FMEMP_ERR_INVALID_BUF,
 * FMEMP_ERR_REGION_OVERLAP, FMEMP_ERR_NOT_INIT. */
FError FMempAddRegion(FMemp* memp, void* begin, void* end);
/* Removes the region added with this begin. FMEMP_ERR_REGION_BUSY (live
 * blocks in it; nothing changes: a retiring region stays retiring),
 * FMEMP_ERR_REGION_NOT_FOUND, FMEMP_ERR_NOT_INIT. */
FError FMempRemoveRegion(FMemp* memp, void* begin);

typedef struct {
  u64 total; /* capacity of all regions */
  u64 used;  /* live blocks, headers included */
  u64 free_bytes;
  u64 max_used; /* peak of used (FMEMP_POLICY_THREAD_CACHE and
                   _THREAD_HEAPS: of used + cached_bytes, see the top of
                   this file) */
  u64 live_blocks;
  u64 regions;
  u64 failed_allocations; /* calls (malloc, calloc, aligned malloc, realloc
                             growth) that returned NULL, once each: not a
                             first attempt that the OOM handler's retry, a
                             cache drain or a thread heap's fallback then
                             served. FMEMP_POLICY_THREAD_HEAPS: a bound thread's
                             failures are its thread heap's, and stay in this
                             total after the thread exits */
  u64 invalid_frees;
  u64 cached_bytes;   /* free blocks parked in per-thread caches (policies
                         FMEMP_POLICY_THREAD_CACHE and _THREAD_HEAPS; else
                         0); used excludes them */
  u64 lost_bytes;     /* damaged free blocks taken out of service (a write
                         into freed memory or heap metadata): never handed
                         out again; used + cached_bytes + free_bytes +
                         lost_bytes == total. Shared regions only under
                         FMEMP_POLICY_THREAD_HEAPS. */
  u64 limit;          /* the hard limit (FMempSetLimit), or FMEMP_LIMIT_NONE */
  u64 soft_limit;     /* FMempSetSoftLimit's, or FMEMP_LIMIT_NONE */
  u64 limit_refusals; /* of failed_allocations, those the hard limit
                         refused */
  u64 limit_usage;    /* the bytes the limits count now, read at once: used +
                         cached_bytes of every region (under
                         FMEMP_POLICY_THREAD_HEAPS, used and cached_bytes sum
                         the thread heaps' figures as of their threads' last
                         calls, this their current bytes). Before the first
                         limit only thread heaps' regions are counted */
} FMempUsage;

typedef struct {
  void* begin;
  void* end;
  u64 total;
  u64 used;
  u64 free_bytes;
  u64 max_used;
  u64 largest_free; /* largest n for which malloc(n) succeeds in it */
  u64 live_blocks;
  u64 failed_allocations; /* requests this region's heap could not serve
                             (another region may have served the call) */
  u64 lost_bytes;         /* damaged free blocks out of service (FMempUsage) */
  u32 retiring;           /* 1 while retiring (FMempRetireRegion): used is
                             then the live bytes it waits for */
} FMempRegionUsage;

/* 64-bit probe. FMEMP_ERR_NOT_INIT / FMEMP_ERR_INVALID_ARG. */
FError FMempProbe64(FMemp* memp, FMempUsage* usage);
/* Number of regions (0 when not ready). */
u32 FMempRegionCount(FMemp* memp);
/* Usage of region `index` (address order). FMEMP_ERR_INVALID_ARG when index
 * is out of range or usage is NULL. */
FError FMempProbeRegion(FMemp* memp, u32 index, FMempRegionUsage* usage);
/* Per-thread caches (FMEMP_POLICY_THREAD_CACHE, and the caches in front of
 * FMEMP_POLICY_THREAD_HEAPS' thread heaps; other policies have none and succeed
 * doing nothing). FMempFlushThreadCache returns the calling thread's cached
 * blocks to the shared regions (under thread heaps: to its thread heap's
 * regions); FMempDrainThreadCaches does it for every thread, idle ones
 * included, before it returns (under thread heaps, every thread heap's cache
 * to that heap's regions; an owner calling meanwhile waits until its heap is
 * done). A
 * thread's cache is also returned when the thread exits.
 * FMEMP_ERR_NOT_INIT. */
FError FMempFlushThreadCache(FMemp* memp);
FError FMempDrainThreadCaches(FMemp* memp);

/* Per-thread heaps (FMEMP_POLICY_THREAD_HEAPS; other policies return
 * FMEMP_ERR_NOT_SUPPORTED).
 *
 * FMempBindThread moves the region that FMempAddRegion (or FMempInit) was
 * given `region_begin` for, with any blocks living in it, into the calling
 * thread's own heap: that thread's malloc, calloc, aligned malloc, realloc
 * and free then use its heap first, with no lock. Blocks of that heap freed
 * by other threads are queued to the owner and applied on its next call.
 * When the thread heap cannot serve a request it falls back to the shared
 * regions, or, with FMEMP_BIND_NO_FALLBACK, returns NULL (after the OOM
 * handler). A thread may bind several regions. Binding a region already bound
 * to the calling thread only updates the flags.
 *   FMEMP_ERR_REGION_NOT_FOUND  no shared region begins there;
 *   FMEMP_ERR_REGION_BUSY       it is bound to another thread;
 *   FMEMP_ERR_INVALID_ARG       unknown flags.
 * FMempUnbindThread moves the calling thread's regions back to the shared
 * ones, live blocks and all; so does the thread's exit. FMempRemoveRegion
 * removes a region bound to the calling thread (FMEMP_ERR_REGION_BUSY while
 * blocks live in it) and refuses one bound to another thread
 * (FMEMP_ERR_REGION_BUSY).
 *
 * FMempProbe64 covers every thread heap (each as of its thread's last call);
 * FMempRegionCount, FMempProbeRegion, FMempCheck and FMemListAll cover the
 * shared regions and the calling thread's own heap. FMempThreadHeapCount and
 * FMempProbeThreadHeap give each bound thread's heap. */
#define FMEMP_BIND_NO_FALLBACK 0x1U
FError FMempBindThread(FMemp* memp, void* region_begin);
FError FMempBindThreadWithFlags(FMemp* memp, void* region_begin, u32 flags);
FError FMempUnbindThread(FMemp* memp);
/* Applies the frees other threads queued to the calling thread's heap, as
 * its next malloc or free would: an idle worker calls it so that probes see
 * those blocks free. FMEMP_SUCCESS (also for a thread without a thread heap),
 * FMEMP_ERR_NOT_SUPPORTED for other policies, FMEMP_ERR_NOT_INIT. */
FError FMempSyncThreadHeap(FMemp* memp);

typedef struct {
  u64 thread_id; /* the bound thread (gettid) */
  u64 total;
  u64 used;
  u64 free_bytes;
  u64 max_used; /* this thread heap's own peak of used + cached_bytes */
  u64 live_blocks;
  u64 regions;
  u64 failed_allocations; /* this thread's calls that returned NULL (a
                             request the shared regions served is not one) */
  u64 invalid_frees;
  u64 fallbacks;    /* requests passed on to the shared regions */
  u64 cached_bytes; /* free blocks parked in the thread heap's cache: in neither
                       used nor free_bytes (used + cached_bytes + free_bytes
                       == total) */
  u64 limit;        /* FMempSetThreadHeapLimit's, or FMEMP_LIMIT_NONE */
  u64 limit_refusals; /* of failed_allocations, those a limit refused in the
                         heap's own regions (a fallback's refusal counts in
                         FMempProbe64's limit_refusals) */
  u64 limit_usage;    /* the bytes its limits count now: used + cached_bytes
                         of its regions and fallback_bytes, current (the
                         fields above are as of its thread's last call) */
  u64 fallback_bytes; /* live blocks this thread took from the shared regions
                         when its heap fell back to them, wherever they are
                         freed: the thread's live bytes are used +
                         fallback_bytes. Counted against the heap's limit;
                         forgotten (left to the shared regions) when the
                         thread exits */
} FMempThreadHeapUsage;

/* Number of threads with a thread heap (0 for other policies or when not
   ready). */
u32 FMempThreadHeapCount(FMemp* memp);
/* Usage of thread heap `index` (in binding order). FMEMP_ERR_INVALID_ARG when
 * index is out of range or usage is NULL; FMEMP_ERR_NOT_SUPPORTED for other
 * policies. */
FError FMempProbeThreadHeap(FMemp* memp, u32 index,
                            FMempThreadHeapUsage* usage);

/* Debug modes, chosen at init (off with FMempInit / FMempInitWithPolicy;
 * docs/HARDENING.md): FMEMP_DEBUG_POISON fills freed memory and new blocks
 * with known bytes and checks freed memory on reuse and in FMempCheck, so a
 * write after free is reported (FMEMP_MISUSE_USE_AFTER_FREE_WRITE);
 * FMEMP_DEBUG_CANARIES puts guard bytes before and after each block,
 * checked on free, realloc and FMempCheck (FMEMP_MISUSE_CANARY_DAMAGED,
 * with the block's size and, for tagged blocks, file and line on stderr);
 * FMEMP_DEBUG_ASAN, in a build with AddressSanitizer, poisons every byte
 * that is not part of a live block so ASan reports the bad access itself.
 * With a mode on, FMEMP_POLICY_THREAD_CACHE bypasses its caches. Returns
 * as FMempInitWithPolicy; FMEMP_ERR_INVALID_ARG for unknown flags. */
#define FMEMP_DEBUG_POISON 0x1U
#define FMEMP_DEBUG_CANARIES 0x2U
#define FMEMP_DEBUG_ASAN 0x4U
FError FMempInitDebug(FMemp* memp, void* begin_addr, void* end_addr,
                      FMempPolicy policy, u32 debug_flags);
/* The integrity check of the one region holding ptr (with the debug modes'
 * checks of its blocks): FMEMP_SUCCESS, FMEMP_ERR_CORRUPT (described on
 * stderr), FMEMP_ERR_REGION_NOT_FOUND when ptr lies in no region,
 * FMEMP_ERR_REGION_BUSY when it lies in a region bound to another thread
 * (FMEMP_POLICY_THREAD_HEAPS), FMEMP_ERR_NOT_INIT. Allocates nothing. */
FError FMempCheckRegionOf(FMemp* memp, const void* ptr);

/* Makes every page of [begin_addr, end_addr) resident and writable now,
 * contents unchanged (madvise(MADV_POPULATE_WRITE), or one atomic touch
 * per page on older kernels), so that no allocation from a region there
 * waits on a first-touch page fault: the latency tail (docs/BENCHMARKS.md).
 * Call it before or after FMempInit / FMempAddRegion on that memory, from
 * any thread. O(pages). An empty range succeeds. FMEMP_ERR_INVALID_BUF for
 * a NULL or reversed range or memory the kernel will not populate for
 * writing (read-only, device memory); FMEMP_ERR_BAD_MALLOC when it cannot
 * (out of memory, part of the range not mapped). */
FError FMempPrefault(void* begin_addr, void* end_addr);

/* Full integrity check: FMEMP_SUCCESS or FMEMP_ERR_CORRUPT (described on
 * stderr: the count of problems and the first 16, each damaged block named
 * by its address). Allocates nothing. */
FError FMempCheck(FMemp* memp);

/* Misuse reports. kind: FMEMP_MISUSE_*. The handler runs inside the pool's
 * lock (under FMEMP_POLICY_THREAD_HEAPS, for misuse in the calling thread's
 * own heap, inside that thread's operation on it instead) and must not call
 * back into the same FMemp. NULL restores the default (one line on
 * stderr). */
#define FMEMP_MISUSE_FOREIGN_POINTER 1
#define FMEMP_MISUSE_INVALID_FREE 2
#define FMEMP_MISUSE_DOUBLE_FREE 3
#define FMEMP_MISUSE_CORRUPT_HEAP 4
#define FMEMP_MISUSE_USE_AFTER_FREE_WRITE 5 /* debug: freed memory written */
#define FMEMP_MISUSE_CANARY_DAMAGED 6       /* debug: overflow or underflow */
typedef void (*FMempErrorHandler)(void* user, int kind, const void* ptr);
FError FMempSetErrorHandler(FMemp* memp, FMempErrorHandler handler, void* user);

/* Out of memory: called, outside every lock of the pool (and outside the
 * calling thread's operation on its cache or thread heap), when a
 * well-formed allocation (malloc, calloc, aligned malloc, realloc growth)
 * finds no room, with the size and alignment requested (16 for plain
 * requests). It may call any function on memp (free blocks, FMempAddRegion,
 * FMempDrainThreadCaches), while other threads' handlers do the same; a
 * nonzero result has the request tried once more. Malformed requests (bad
 * alignment, calloc overflow) never reach it. NULL removes it.
 * FMEMP_ERR_NOT_INIT. */
typedef int (*FMempOomHandler)(void* user, fsize_t size, fsize_t align);
FError FMempSetOomHandler(FMemp* memp, FMempOomHandler handler, void* user);

/* --- Budgets ---
 * A hard limit caps the bytes taken from the FMemp's regions: blocks in use
 * (their spans, headers included: FMempUsage.used) plus blocks parked in
 * per-thread caches (cached_bytes), whatever the number of regions. An
 * allocation that would pass it returns NULL, is counted in
 * failed_allocations and limit_refusals, and never reaches the OOM handler
 * (which may still add regions for requests under the limit). Usage never
 * passes the limit by a single byte, however many threads race at it. A
 * limit below the current usage is accepted: refusals start, nothing is
 * freed. FMEMP_LIMIT_NONE removes it. Before the first limit or soft limit
 * nothing is charged; from then on each block taken from or returned to a
 * region costs one atomic operation (a per-thread cache hit costs nothing).
 *
 * A soft limit calls `handler` once, outside every lock, on the thread whose
 * allocation took usage above `bytes`, once that allocation's operation on
 * the thread's cache or heap is over; the handler may free (evict),
 * allocate and call any function on memp, FMempDrainThreadCaches and
 * FMempProbeRegion included, while other threads' handlers do the same. It
 * is called again only after usage has fallen below bytes - hysteresis and
 * crossed once more.
 *
 * Under FMEMP_POLICY_THREAD_HEAPS the limits cover the shared regions and
 * every thread heap's together, and each thread heap may have limits of its
 * own (FMempSetThreadHeapLimit): a bound thread's request that would pass its
 * heap's limit or the FMemp's returns NULL without falling back to the
 * shared regions.
 *
 * Both return FMEMP_SUCCESS or FMEMP_ERR_NOT_INIT; FMempSetSoftLimit also
 * FMEMP_ERR_INVALID_ARG, changing nothing, for a NULL handler with a limit
 * (FMEMP_LIMIT_NONE with any handler removes it) or a hysteresis above the
 * limit. FMempProbe64 reports both limits and the refusals. */
#define FMEMP_LIMIT_NONE ((u64)-1)
typedef void (*FMempSoftLimitHandler)(void* user, u64 usage, u64 soft_limit);
FError FMempSetLimit(FMemp* memp, u64 bytes);
FError FMempSetSoftLimit(FMemp* memp, u64 bytes, u64 hysteresis,
                         FMempSoftLimitHandler handler, void* user);
/* A per-thread heap's own limits (FMEMP_POLICY_THREAD_HEAPS), over the bytes
 * of its regions in use or parked in its cache and its fallback blocks
 * (FMempThreadHeapUsage.fallback_bytes: a fallback that would pass the limit
 * returns NULL), with the semantics above;
 * the soft handler runs on the heap's thread. thread_id names the heap's
 * thread (FMempThreadHeapUsage.thread_id; 0: the calling thread's, e.g. right
 * after FMempBindThread). Any thread may change them at any time.
 * FMEMP_ERR_INVALID_ARG when that thread has no thread heap (or as
 * FMempSetSoftLimit), FMEMP_ERR_NOT_SUPPORTED for other policies,
 * FMEMP_ERR_NOT_INIT. FMempProbeThreadHeap reports the hard limit and the
 * heap's refusals. */
FError FMempSetThreadHeapLimit(FMemp* memp, u64 thread_id, u64 bytes);
FError FMempSetThreadHeapSoftLimit(FMemp* memp, u64 thread_id, u64 bytes,
                                   u64 hysteresis,
                                   FMempSoftLimitHandler handler, void* user);

/* --- Region retirement ---
 * FMempRetireRegion takes the region added with `begin` out of service while
 * blocks still live in it: from then on no thread gets a new block from it
 * (a growing realloc of one of its blocks moves the block), its live blocks
 * stay valid, and the free of its last block (by any thread) removes it;
 * then handler(user, begin, end) runs on that thread, outside every lock of
 * the FMemp and its operation on a per-thread cache or heap, so that it may
 * munmap the region or call into memp (FMempDrainThreadCaches included;
 * when a thread's exit frees the last block, the handler runs on that
 * thread at the end of its hand-back, with no fmemp lock held). A region
 * with no live block goes at once (the handler runs before the call
 * returns). handler may be NULL. FMempProbeRegion shows a retiring region
 * (retiring, and its live bytes in used). FMempCancelRetire puts a retiring
 * region back into service.
 * Errors, nothing changed: FMEMP_ERR_REGION_NOT_FOUND (no region begins
 * there, it already went, or, under FMEMP_POLICY_THREAD_HEAPS, it is bound
 * to a thread: unbind it first); FMEMP_ERR_INVALID_ARG (retiring a region
 * twice, cancelling one that is not retiring); FMEMP_ERR_NOT_INIT. */
typedef void (*FMempRetiredHandler)(void* user, void* begin, void* end);
FError FMempRetireRegion(FMemp* memp, void* begin, FMempRetiredHandler handler,
                         void* user);
FError FMempCancelRetire(FMemp* memp, void* begin);

/* --- Tagging (the SDK's FMEMP_TAG_DEBUG) ---
 * Tagged allocations record file, line, message and thread; FMemListAll
 * lists them with each live block, which makes it a leak report. The tag
 * table lives in fmemp's own metadata arena (mmap, never malloc), and the
 * FMemp layout does not change. */
void* FMempMallocTag(FMemp* memp, fsize_t nbytes, const char* file,
                     unsigned long line, const char* msg);
void* FMempMallocAlignTag(FMemp* memp, fsize_t size, fsize_t align,
                          const char* file, unsigned long line,
                          const char* msg);
void* FMempCallocTag(FMemp* memp, fsize_t count, fsize_t size, const char* file,
                     unsigned long line, const char* msg);
void* FMempReallocTag(FMemp* memp, void* ptr, fsize_t size, const char* file,
                      unsigned long line, const char* msg);
void FMempFreeTag(FMemp* memp, void* ptr);

#ifdef FMEMP_TAG_DEBUG
#define FMEMP_MALLOC(memp, size) \
  FMempMallocTag((memp), (size), __FILE__, __LINE__, "")
#define FMEMP_MALLOC_ALIGN(memp, size, align) \
  FMempMallocAlignTag((memp), (size), (align), __FILE__, __LINE__, "")
#define FMEMP_CALLOC(memp, count, size) \
  FMempCallocTag((memp), (count), (size), __FILE__, __LINE__, "")
#define FMEMP_REALLOC(memp, ptr, nbytes) \
  FMempReallocTag((memp), (ptr), (nbytes), __FILE__, __LINE__, "")
#define FMEMP_FREE(memp, ptr) FMempFreeTag((memp), (ptr))
#else
#define FMEMP_MALLOC(memp, size) FMempMalloc((memp), (size))
#define FMEMP_MALLOC_ALIGN(memp, size, align) \
  FMempMallocAlign((memp), (size), (align))
#define FMEMP_CALLOC(memp, count, size) FMempCalloc((memp), (count), (size))
#define FMEMP_REALLOC(memp, ptr, nbytes) FMempRealloc((memp), (ptr), (nbytes))
#define FMEMP_FREE(memp, ptr) FMempFree((memp), (ptr))
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FMEMP_FMEMP_FMEMP_H_ */
