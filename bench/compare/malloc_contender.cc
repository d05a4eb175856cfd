// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0

#include "bench/compare/malloc_contender.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace fmemp::bench::compare {
namespace {

// The symbol `name` as the dynamic linker resolves it for the program, or
// nullptr.
void* Lookup(const char* name) { return dlsym(RTLD_DEFAULT, name); }

std::string JemallocVersion() {
  using Mallctl = int (*)(const char*, void*, size_t*, void*, size_t);
  auto mallctl = reinterpret_cast<Mallctl>(Lookup("mallctl"));
  if (mallctl == nullptr) return "";
  const char* version = nullptr;
  size_t length = sizeof(version);
  if (mallctl("version", &version, &length, nullptr, 0) != 0) return "";
  return version == nullptr ? "" : version;
}

std::string TcmallocVersion() {
  using TcVersion = const char* (*)(int*, int*, const char**);
  auto tc_version = reinterpret_cast<TcVersion>(Lookup("tc_version"));
  if (tc_version == nullptr) return "";
  int major = 0;
  int minor = 0;
  const char* patch = nullptr;
  const char* text = tc_version(&major, &minor, &patch);
  return text == nullptr ? "" : text;
}

std::string MimallocVersion() {
  using MiVersion = int (*)();
  auto mi_version = reinterpret_cast<MiVersion>(Lookup("mi_version"));
  if (mi_version == nullptr) return "";
  const int v = mi_version();  // e.g. 209 for 2.0.9
  return "mimalloc " + std::to_string(v / 100) + "." +
         std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
}

// Adapter over the process's malloc. Create ignores the HeapSpec.
class MallocAdapter : public AdapterDefaults {
 public:
  static constexpr bool kThreadSafe = true;
  static std::unique_ptr<MallocAdapter> Create(const HeapSpec&) {
    return std::make_unique<MallocAdapter>();
  }
  void* Allocate(size_t bytes) { return std::malloc(bytes); }
  void Free(void* ptr) { std::free(ptr); }
};

}  // namespace

MallocIdentity IdentifyMalloc() {
  MallocIdentity identity{"unknown", "", ""};
  Dl_info info{};
  void* const malloc_symbol = Lookup("malloc");
  if (malloc_symbol == nullptr || dladdr(malloc_symbol, &info) == 0 ||
      info.dli_fname == nullptr) {
    return identity;
  }
  identity.library = info.dli_fname;
  const std::string& lib = identity.library;
  auto has = [&lib](const char* part) {
    return lib.find(part) != std::string::npos;
  };
  if (has("jemalloc")) {
    identity.version = JemallocVersion();
    if (!identity.version.empty()) identity.name = "jemalloc";
  } else if (has("tcmalloc")) {
    identity.version = TcmallocVersion();
    if (!identity.version.empty()) identity.name = "tcmalloc";
  } else if (has("mimalloc")) {
    identity.version = MimallocVersion();
    if (!identity.version.empty()) identity.name = "mimalloc";
  } else if (has("libc.so")) {
    identity.version = std::string("glibc ") + gnu_get_libc_version();
    identity.name = "glibc";
  }
  return identity;
}

Contender MallocContender(const std::string& name) {
  return MakeContender<MallocAdapter>(name, Family::kMalloc);
}

}  // namespace fmemp::bench::compare
