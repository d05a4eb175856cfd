// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fmemp/testing/routed_operator_new.h
//
// Every replaceable global operator new and delete (C++17: plain, array,
// nothrow, aligned, sized), routed into three hooks a test program defines,
// so a test can put the program's C++ objects in an FMemp the way a user
// does. Link //fmemp/testing:routed_operator_new (alwayslink) into exactly
// one test binary and define the hooks in it:
//
//   namespace fmemp::testkit::routed_new {
//   void* Allocate(size_t bytes, size_t alignment) noexcept { ... }
//   void Deallocate(void* p) noexcept { ... }
//   const char* ProgramName() noexcept { return "my_test"; }
//   }
//
// The throwing forms call Allocate and, on nullptr, write
// "<ProgramName()>: out of memory" to stderr with write(2) (no allocation)
// and abort: a test must not meet std::bad_alloc from its own scaffolding.
// Plain forms ask for 16-byte alignment (__STDCPP_DEFAULT_NEW_ALIGNMENT__).

#ifndef FMEMP_FMEMP_TESTING_ROUTED_OPERATOR_NEW_H_
#define FMEMP_FMEMP_TESTING_ROUTED_OPERATOR_NEW_H_

#include <cstddef>

namespace fmemp {
namespace testkit {
namespace routed_new {

// Defined by the test program. Both may be called before main and after it
// returns, from any thread, and must not call operator new themselves.
void* Allocate(size_t bytes, size_t alignment) noexcept;
void Deallocate(void* p) noexcept;  // p may be nullptr
const char* ProgramName() noexcept;

}  // namespace routed_new
}  // namespace testkit
}  // namespace fmemp

#endif  // FMEMP_FMEMP_TESTING_ROUTED_OPERATOR_NEW_H_
