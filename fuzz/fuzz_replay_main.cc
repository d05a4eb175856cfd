// Copyright 2026 The fmemp Authors.
// SPDX-License-Identifier: Apache-2.0
//
// fuzz/fuzz_replay_main.cc
//
// A main() for fuzz targets built without libFuzzer (g++, and the asan and
// tsan configurations): it calls LLVMFuzzerTestOneInput once on every input
// it is given, so each fuzz target is also an ordinary, deterministic test
// that replays its seed corpus and its regression inputs.
//
//   heap_fuzz [-flag=value ...] [FILE_OR_DIR ...]
//
// * Arguments starting with '-' are libFuzzer flags and are ignored, so the
//   same command line works for both builds.
// * Each FILE is run; each DIR is run file by file, recursively, in sorted
//   order. A path that does not exist is an error (exit status 2), so a
//   misconfigured corpus location fails the test instead of passing it.
// * With no path, the target's corpus is looked for at
//   $TEST_SRCDIR/$TEST_WORKSPACE/fuzz/corpus/<program name> (as under bazel
//   test) and then at fuzz/corpus/<program name> relative to the working
//   directory (as from the repository root).
// * A handful of built-in inputs run after the corpus: the empty input, runs
//   of 0x00 and 0xff, a byte ramp, and pseudo-random inputs from fixed seeds.
//   FMEMP_FUZZ_REPLAY_BUILTINS=0 in the environment skips them (to replay
//   one file alone).
//
// A failing input aborts the process inside LLVMFuzzerTestOneInput; the
// line "replaying <path>" printed before each file names it. Prints a
// summary line and exits 0 when every input ran.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

// Pseudo-random built-in inputs, and their largest size.
constexpr int kRandomInputs = 48;
constexpr size_t kMaxRandomSize = 1024;

void RunOne(const std::vector<uint8_t>& input) {
  // A null pointer for an empty input, as libFuzzer passes.
  LLVMFuzzerTestOneInput(input.empty() ? nullptr : input.data(), input.size());
}

bool RunFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<uint8_t> input((std::istreambuf_iterator<char>(file)),
                                   std::istreambuf_iterator<char>());
  std::printf("replaying %s (%zu bytes)\n", path.c_str(), input.size());
  std::fflush(stdout);
  RunOne(input);
  return true;
}

// Runs every regular file under `path` (or `path` itself); counts them.
bool RunPath(const fs::path& path, size_t* count) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    ++*count;
    return RunFile(path);
  }
  if (!fs::is_directory(path, error)) {
    std::fprintf(stderr, "no such corpus file or directory: %s\n",
                 path.c_str());
    return false;
  }
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator
           it(path, fs::directory_options::follow_directory_symlink, error),
       end;
       !error && it != end; it.increment(error)) {
    if (fs::is_regular_file(it->path(), error)) files.push_back(it->path());
  }
  if (error) {
    std::fprintf(stderr, "cannot list %s: %s\n", path.c_str(),
                 error.message().c_str());
    return false;
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    if (!RunFile(file)) return false;
    ++*count;
  }
  return true;
}

// The default corpus directory of the program, or "" if none is found.
std::string DefaultCorpus(const char* argv0) {
  const std::string name = fs::path(argv0).filename().string();
  std::vector<fs::path> candidates;
  const char* const srcdir = std::getenv("TEST_SRCDIR");
  const char* const workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    candidates.push_back(fs::path(srcdir) / workspace / "fuzz" / "corpus" /
                         name);
  }
  candidates.push_back(fs::path("fuzz") / "corpus" / name);
  for (const fs::path& dir : candidates) {
    std::error_code error;
    if (fs::is_directory(dir, error)) return dir.string();
  }
  return "";
}

uint64_t SplitMix64(uint64_t* state) {
  uint64_t x = (*state += 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

size_t RunBuiltIns() {
  size_t count = 0;
  RunOne({});
  RunOne(std::vector<uint8_t>(64, 0x00));
  RunOne(std::vector<uint8_t>(64, 0xff));
  std::vector<uint8_t> ramp(512);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i);
  RunOne(ramp);
  count += 4;
  for (int seed = 1; seed <= kRandomInputs; ++seed) {
    uint64_t state = static_cast<uint64_t>(seed);
    std::vector<uint8_t> input(SplitMix64(&state) % (kMaxRandomSize + 1));
    for (uint8_t& byte : input) byte = static_cast<uint8_t>(SplitMix64(&state));
    RunOne(input);
    ++count;
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') paths.push_back(argv[i]);
  }
  if (paths.empty()) {
    const std::string corpus = DefaultCorpus(argv[0]);
    if (!corpus.empty()) paths.push_back(corpus);
  }
  size_t files = 0;
  for (const std::string& path : paths) {
    if (!RunPath(path, &files)) return 2;
  }
  const char* const builtins = std::getenv("FMEMP_FUZZ_REPLAY_BUILTINS");
  const bool skip = builtins != nullptr && std::string(builtins) == "0";
  const size_t built_in = skip ? 0 : RunBuiltIns();
  std::printf("%s: replayed %zu corpus inputs and %zu built-in inputs\n",
              argv[0], files, built_in);
  return 0;
}
