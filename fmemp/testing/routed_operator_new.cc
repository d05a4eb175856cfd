// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "fmemp/testing/routed_operator_new.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace {

using ::fmemp::testkit::routed_new::Allocate;
using ::fmemp::testkit::routed_new::Deallocate;
using ::fmemp::testkit::routed_new::ProgramName;

constexpr size_t kDefaultAlignment = 16;

void WriteToStderr(const char* text) {
  ssize_t ignored = write(2, text, std::strlen(text));
  (void)ignored;
}

void* AllocateOrAbort(size_t bytes, size_t alignment) {
  void* p = Allocate(bytes, alignment);
  if (p == nullptr) {
    WriteToStderr(ProgramName());
    WriteToStderr(": out of memory\n");
    std::abort();
  }
  return p;
}

}  // namespace

void* operator new(size_t n) { return AllocateOrAbort(n, kDefaultAlignment); }
void* operator new[](size_t n) { return AllocateOrAbort(n, kDefaultAlignment); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, kDefaultAlignment);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return Allocate(n, kDefaultAlignment);
}
void* operator new(size_t n, std::align_val_t a) {
  return AllocateOrAbort(n, static_cast<size_t>(a));
}
void* operator new[](size_t n, std::align_val_t a) {
  return AllocateOrAbort(n, static_cast<size_t>(a));
}
void* operator new(size_t n, std::align_val_t a,
                   const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<size_t>(a));
}
void* operator new[](size_t n, std::align_val_t a,
                     const std::nothrow_t&) noexcept {
  return Allocate(n, static_cast<size_t>(a));
}
void operator delete(void* p) noexcept { Deallocate(p); }
void operator delete[](void* p) noexcept { Deallocate(p); }
void operator delete(void* p, size_t) noexcept { Deallocate(p); }
void operator delete[](void* p, size_t) noexcept { Deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  Deallocate(p);
}
void operator delete(void* p, std::align_val_t) noexcept { Deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Deallocate(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  Deallocate(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  Deallocate(p);
}
void operator delete(void* p, std::align_val_t,
                     const std::nothrow_t&) noexcept {
  Deallocate(p);
}
void operator delete[](void* p, std::align_val_t,
                       const std::nothrow_t&) noexcept {
  Deallocate(p);
}
