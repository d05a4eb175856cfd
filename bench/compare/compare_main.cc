// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// bench/compare/compare_main.cc
//
// One binary of the comparison suite (built once per malloc: glibc,
// jemalloc, tcmalloc, mimalloc). run_compare.sh runs it once per workload
// and contender and merges the results; see docs/BENCHMARKS.md.
//
//   compare_<malloc> --expect=<malloc> --workload=<name> [--scale=full]
//                    [--contenders=a,b] [--threads=1,2]
//   compare_<malloc> --list
//   compare_<malloc> --callgrind_probe=<bytes>:<regions>:<live>:<ops>[:<max>]
//                    --contenders=<one name> [--callgrind_aggregate]
//
// Workloads: single, server, prodcons, latency, memory, regions. Results go
// to stdout as tab-separated lines (see Reporter); progress to stderr.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bench/compare/callgrind_probe.h"
#include "bench/compare/contender.h"
#include "bench/compare/malloc_contender.h"
#include "bench/compare/workloads.h"

namespace fmemp::bench::compare {
namespace {

struct Flags {
  std::string expect;
  std::string workload;
  std::string scale = "full";
  std::string contenders = "all";
  std::string threads = "1,2";
  std::string probe;
  bool list = false;
  bool aggregate = false;  // --callgrind_aggregate: no per-call dumps
};

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// Parses --name=value flags; false (with a message) on anything else.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  struct Known {
    const char* prefix;
    std::string* value;
  };
  const Known known[] = {
      {"--expect=", &flags->expect},   {"--workload=", &flags->workload},
      {"--scale=", &flags->scale},     {"--contenders=", &flags->contenders},
      {"--threads=", &flags->threads}, {"--callgrind_probe=", &flags->probe},
  };
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (std::strcmp(arg, "--list") == 0) {
      flags->list = true;
      continue;
    }
    if (std::strcmp(arg, "--callgrind_aggregate") == 0) {
      flags->aggregate = true;
      continue;
    }
    bool matched = false;
    for (const Known& k : known) {
      const size_t n = std::strlen(k.prefix);
      if (std::strncmp(arg, k.prefix, n) == 0) {
        *k.value = arg + n;
        matched = true;
        break;
      }
    }
    if (!matched) {
      std::fprintf(stderr, "unknown argument '%s'\n", arg);
      return false;
    }
  }
  return true;
}

// The contenders named in `names` ("all": every one), in list order.
std::vector<const Contender*> Select(const std::vector<Contender>& all,
                                     const std::string& names) {
  std::vector<const Contender*> chosen;
  const std::vector<std::string> wanted = Split(names);
  for (const Contender& c : all) {
    for (const std::string& name : wanted) {
      if (name == "all" || name == c.name) {
        chosen.push_back(&c);
        break;
      }
    }
  }
  return chosen;
}

bool RunWorkload(const std::string& workload, const Contender& c,
                 const Scale& scale, const std::vector<int>& threads) {
  const Reporter r(c.name);
  if (workload == "single") return RunSingleThread(c, scale, r);
  if (workload == "server") return RunServer(c, scale, threads, r);
  if (workload == "prodcons") return RunProducerConsumer(c, scale, r);
  if (workload == "latency") return RunLatency(c, scale, r);
  if (workload == "memory") return RunMemoryEfficiency(c, scale, r);
  // Malloc contenders ignore regions; they run as the baseline.
  if (workload == "regions") return RunRegions(c, scale, r);
  std::fprintf(stderr, "unknown workload '%s'\n", workload.c_str());
  return false;
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;

  const MallocIdentity identity = IdentifyMalloc();
  std::fprintf(stderr, "malloc is %s (%s, from %s)\n", identity.name.c_str(),
               identity.version.c_str(), identity.library.c_str());
  if (!flags.expect.empty() && flags.expect != identity.name) {
    std::fprintf(stderr, "expected malloc to be %s: refusing to measure\n",
                 flags.expect.c_str());
    return 3;
  }
  std::printf("I\t%s\t%s\t%s\n", identity.name.c_str(),
              identity.version.c_str(), identity.library.c_str());

  const std::vector<Contender> all = AllContenders(identity.name);
  const std::vector<const Contender*> chosen = Select(all, flags.contenders);
  if (flags.list) {
    for (const Contender& c : all) {
      std::printf("%s\t%s\t%s\n", c.name.c_str(),
                  c.family == Family::kMalloc ? "malloc" : "fmemp",
                  c.thread_safe ? "threads" : "single");
    }
    return 0;
  }
  if (chosen.empty()) {
    std::fprintf(stderr, "no contender matches '%s'\n",
                 flags.contenders.c_str());
    return 2;
  }
  if (!flags.probe.empty()) {
    ProbeSpec spec;
    spec.dump_each_call = !flags.aggregate;
    if (!ParseProbeSpec(flags.probe, &spec) || chosen.size() != 1) {
      std::fprintf(stderr,
                   "--callgrind_probe=<bytes>:<regions>:<live>:<ops>[:<max>] "
                   "needs exactly one contender\n");
      return 2;
    }
    return RunCallgrindProbe(*chosen.front(), spec);
  }

  Scale scale;
  if (!ScaleByName(flags.scale, &scale)) {
    std::fprintf(stderr, "unknown scale '%s' (full, quick, smoke)\n",
                 flags.scale.c_str());
    return 2;
  }
  std::vector<int> threads;
  for (const std::string& t : Split(flags.threads)) {
    const int n = std::atoi(t.c_str());
    if (n < 1) {
      std::fprintf(stderr, "bad --threads entry '%s'\n", t.c_str());
      return 2;
    }
    threads.push_back(n);
  }
  bool ok = true;
  for (const Contender* c : chosen) {
    std::fprintf(stderr, "%s / %s\n", flags.workload.c_str(), c->name.c_str());
    ok &= RunWorkload(flags.workload, *c, scale, threads);
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace fmemp::bench::compare

int main(int argc, char** argv) {
  return fmemp::bench::compare::Main(argc, argv);
}
