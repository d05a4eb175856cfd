// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// Built in a workspace of its own (tests/outside_workspace/): the SDK's C API
// by the SDK's header name (@fmemp//fmemp) and the C++ front-end
// (@fmemp//fmemp:memp). Prints what it did and exits non-zero on the first
// failed check; run.sh checks the last line.

#include <cstdint>
#include <cstdio>
#include <memory>

#include "fmemory_pool.h"
#include "fmemp/memp.h"
#include "sync/spin_lock.h"

namespace {

bool Check(bool ok, const char* what) {
  std::printf("%s: %s\n", what, ok ? "ok" : "FAILED");
  return ok;
}

bool UseCApi() {
  static u8 buffer[9000];
  FMemp memp = {};
  if (!Check(FMempInit(&memp, buffer, buffer + sizeof(buffer)) == FMEMP_SUCCESS,
             "C API: FMempInit")) {
    return false;
  }
  void* p = FMempMallocAlign(&memp, 256, 64);
  u32 total = 0, used = 0, peak = 0;
  FMemProbe(&memp, &total, &used, &peak);
  std::printf("C API: used: %u, total: %u, peak: %u\n", used, total, peak);
  bool ok = Check(p != nullptr && reinterpret_cast<uintptr_t>(p) % 64 == 0,
                  "C API: aligned malloc");
  ok &= Check(used > 0 && used <= total, "C API: probe");
  FMempFree(&memp, p);
  FMemProbe(&memp, &total, &used, &peak);
  ok &= Check(used == 0, "C API: free");
  FMempRemove(&memp);
  FMempRelease(&memp);
  return ok;
}

bool UseFrontEnd() {
  constexpr size_t kBytes = 64 << 10;
  std::unique_ptr<char[]> region(new char[kBytes]);
  fmemp::Memp<fmemp::sync::SpinLock> memp;
  if (!Check(memp.AddRegion(region.get(), kBytes).ok(), "Memp: AddRegion")) {
    return false;
  }
  void* p = memp.Allocate(100);
  bool ok =
      Check(p != nullptr && memp.Probe().used_bytes > 0, "Memp: Allocate");
  ok &= Check(memp.Free(p) && memp.Probe().used_bytes == 0, "Memp: Free");
  ok &= Check(memp.Check().ok(), "Memp: Check");
  return ok;
}

}  // namespace

int main() {
  const bool c_api_ok = UseCApi();
  const bool front_end_ok = UseFrontEnd();  // runs whatever the C API did
  const bool ok = c_api_ok && front_end_ok;
  std::printf("%s\n", ok ? "outside workspace: fmemp works" : "FAILED");
  return ok ? 0 : 1;
}
