// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/programs/malloc_shim.cc
//
// libfmemp_malloc.so: the malloc family forwarded to one FMemp, for running
// third-party programs unchanged under LD_PRELOAD (bench/programs/run.sh).
// It is a measuring tool, not a supported way to replace malloc.
//
// * The FMemp is created on the first call, over one MAP_NORESERVE mapping
//   of kRegionBytes, with the policy named by FMEMP_SHIM_POLICY ("cache",
//   the C API's default, or "mutex", "spinlock").
// * A call made while this thread is already inside an fmemp call (fmemp's
//   own bookkeeping, if any path of it still calls the global allocator) is
//   served by a separate TLSF heap over a static buffer, and counted: the
//   report at exit says whether the FMemp served everything.
// * free() of a pointer from neither heap is counted and ignored.
// * FMEMP_SHIM_REPORT=1 prints the counts to stderr at exit.
//
// Thread safety: as the FMemp's policy; the fallback heap is under a spin
// lock. Every counter is a relaxed atomic.

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "fmemp/fmemp.h"
#include "tlsf/tlsf.h"

// How deep the calling thread is in fmemp calls. Initial-exec TLS: a
// global-dynamic access could call malloc itself. A hidden global rather than
// a local: the linker resolved a local initial-exec variable of this library
// to the wrong offset of its TLS block (seen with Debian's ld and gold).
extern "C"
    __attribute__((visibility("hidden"),
                   tls_model("initial-exec"))) __thread int fmemp_shim_depth;
__thread int fmemp_shim_depth;

namespace {

constexpr size_t kRegionBytes = size_t{8} << 30;     // reserved, not touched
constexpr size_t kFallbackBytes = size_t{64} << 20;  // static, lazily touched

FMemp memp;
char* region_begin = nullptr;
char* region_end = nullptr;
std::atomic<int> state{0};          // 0 none, 1 initialising, 2 ready, 3 failed
FError init_error = FMEMP_SUCCESS;  // why state is 3 (0: mmap failed)

alignas(64) char fallback_buffer[kFallbackBytes];
tlsf_t fallback = nullptr;
std::atomic_flag fallback_lock = ATOMIC_FLAG_INIT;

std::atomic<uint64_t> served_by_fmemp{0};
std::atomic<uint64_t> served_by_fallback{0};
std::atomic<uint64_t> foreign_frees{0};

class FallbackLock {
 public:
  FallbackLock() {
    while (fallback_lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~FallbackLock() { fallback_lock.clear(std::memory_order_release); }
};

// Marks the calling thread as inside fmemp for the scope's life.
class Inside {
 public:
  Inside() { ++fmemp_shim_depth; }
  ~Inside() { --fmemp_shim_depth; }
};

bool InRegion(const void* p) {
  const char* c = static_cast<const char*>(p);
  return c >= region_begin && c < region_end;
}

bool InFallback(const void* p) {
  const char* c = static_cast<const char*>(p);
  return c >= fallback_buffer && c < fallback_buffer + kFallbackBytes;
}

FMempPolicy PolicyFromEnvironment() {
  const char* name = getenv("FMEMP_SHIM_POLICY");
  if (name == nullptr || strcmp(name, "cache") == 0) {
    return FMEMP_POLICY_THREAD_CACHE;
  }
  if (strcmp(name, "mutex") == 0) return FMEMP_POLICY_MUTEX;
  if (strcmp(name, "spinlock") == 0) return FMEMP_POLICY_SPINLOCK;
  static const char kMessage[] =
      "fmemp shim: FMEMP_SHIM_POLICY is cache, mutex or spinlock\n";
  (void)!write(2, kMessage, sizeof(kMessage) - 1);
  _exit(2);
}

void* FallbackAllocate(size_t alignment, size_t bytes) {
  FallbackLock hold;
  if (fallback == nullptr) {
    fallback = tlsf_create_with_pool(fallback_buffer, kFallbackBytes);
  }
  served_by_fallback.fetch_add(1, std::memory_order_relaxed);
  return alignment == 0 ? tlsf_malloc(fallback, bytes)
                        : tlsf_memalign(fallback, alignment, bytes);
}

void FallbackFree(void* p) {
  FallbackLock hold;
  tlsf_free(fallback, p);
}

size_t FallbackSize(void* p) {
  FallbackLock hold;
  return tlsf_block_size(p);
}

// Whether the FMemp may serve this call: it exists and this thread is not
// inside it already. Creates it on the first call.
bool FmempReady() {
  if (fmemp_shim_depth != 0) return false;
  int s = state.load(std::memory_order_acquire);
  if (s == 2) return true;
  if (s == 0 && state.compare_exchange_strong(s, 1)) {
    Inside inside;
    void* mapping = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mapping != MAP_FAILED) {
      region_begin = static_cast<char*>(mapping);
      region_end = region_begin + kRegionBytes;
      init_error = FMempInitWithPolicy(&memp, region_begin, region_end,
                                       PolicyFromEnvironment());
      if (init_error == FMEMP_SUCCESS) {
        state.store(2, std::memory_order_release);
        return true;
      }
    }
    state.store(3, std::memory_order_release);
    return false;
  }
  // Another thread is creating it: serve this call from the fallback.
  return state.load(std::memory_order_acquire) == 2;
}

void* Allocate(size_t alignment, size_t bytes) {
  if (FmempReady()) {
    Inside inside;
    served_by_fmemp.fetch_add(1, std::memory_order_relaxed);
    return alignment == 0 ? FMempMalloc(&memp, bytes)
                          : FMempMallocAlign(&memp, bytes, alignment);
  }
  return FallbackAllocate(alignment, bytes);
}

void Release(void* p) {
  if (p == nullptr) return;
  if (InRegion(p)) {
    Inside inside;
    FMempFree(&memp, p);
  } else if (InFallback(p)) {
    FallbackFree(p);
  } else {
    foreign_frees.fetch_add(1, std::memory_order_relaxed);
  }
}

__attribute__((destructor)) void Report() {
  if (getenv("FMEMP_SHIM_REPORT") == nullptr) return;
  char line[256];
  const int n = snprintf(
      line, sizeof(line),
      "fmemp shim: %llu calls served by the FMemp, %llu by the fallback, "
      "%llu foreign frees ignored; state %d, init error 0x%x\n",
      static_cast<unsigned long long>(served_by_fmemp.load()),     // NOLINT
      static_cast<unsigned long long>(served_by_fallback.load()),  // NOLINT
      static_cast<unsigned long long>(foreign_frees.load()),       // NOLINT
      state.load(), static_cast<unsigned>(init_error));
  if (n > 0) (void)!write(2, line, static_cast<size_t>(n));
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* malloc(size_t bytes) {
  return Allocate(0, bytes);
}

__attribute__((visibility("default"))) void free(void* p) { Release(p); }

__attribute__((visibility("default"))) void* calloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) return nullptr;
  void* p = Allocate(0, bytes);
  // The FMemp's blocks come from a fresh mapping or from earlier frees;
  // clear them either way (FMempCalloc would, but needs the FMemp ready).
  if (p != nullptr) memset(p, 0, bytes);
  return p;
}

__attribute__((visibility("default"))) void* realloc(void* p, size_t bytes) {
  if (p == nullptr) return Allocate(0, bytes);
  if (InRegion(p) && fmemp_shim_depth == 0) {
    Inside inside;
    served_by_fmemp.fetch_add(1, std::memory_order_relaxed);
    return FMempRealloc(&memp, p, bytes);
  }
  if (bytes == 0) {
    Release(p);
    return nullptr;
  }
  // A fallback block (or a region block inside fmemp): move it.
  void* fresh = Allocate(0, bytes);
  if (fresh == nullptr) return nullptr;
  const size_t old = InFallback(p) ? FallbackSize(p) : bytes;
  memcpy(fresh, p, old < bytes ? old : bytes);
  Release(p);
  return fresh;
}

__attribute__((visibility("default"))) void* reallocarray(void* p, size_t count,
                                                          size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, bytes);
}

__attribute__((visibility("default"))) int posix_memalign(void** out,
                                                          size_t alignment,
                                                          size_t bytes) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
    return EINVAL;
  }
  void* p = Allocate(alignment, bytes);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((visibility("default"))) void* aligned_alloc(size_t alignment,
                                                           size_t bytes) {
  return Allocate(alignment, bytes);
}

__attribute__((visibility("default"))) void* memalign(size_t alignment,
                                                      size_t bytes) {
  return Allocate(alignment, bytes);
}

__attribute__((visibility("default"))) void* valloc(size_t bytes) {
  return Allocate(static_cast<size_t>(sysconf(_SC_PAGESIZE)), bytes);
}

// Not supported for the FMemp's blocks (the C API has no usable-size call):
// returns 0 for them. The programs run.sh drives do not call it.
__attribute__((visibility("default"))) size_t malloc_usable_size(void* p) {
  return InFallback(p) ? FallbackSize(p) : 0;
}

}  // extern "C"
