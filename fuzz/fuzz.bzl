"""fmemp_fuzz_test: a libFuzzer target that is also an ordinary test."""

load("//tools:fmemp.bzl", "fmemp_cc_test")

def fmemp_fuzz_test(name, srcs = [], deps = [], **kwargs):
    """A fuzz target, tagged "fuzz_target" for tools/test.sh's fuzz stage.

    Under --config=fuzz (//tools:libfuzzer) it links libFuzzer's main; `bazel
    test` then runs each input of the seed corpus once (-runs=0) and exits.
    In every other configuration fuzz_replay_main.cc provides main() and the
    test replays the same corpus plus built-in inputs. Either way the corpus
    is corpus/<name>/ in this package, and the test never fuzzes open-ended.

    Args:
      name: the target; its corpus is corpus/<name>/.
      srcs: the sources defining LLVMFuzzerTestOneInput.
      deps: what they need.
      **kwargs: passed to fmemp_cc_test (size, timeout, ...).
    """
    corpus = native.package_name() + "/corpus/" + name
    fmemp_cc_test(
        name = name,
        srcs = srcs + select({
            "//tools:libfuzzer": [],
            "//conditions:default": ["fuzz_replay_main.cc"],
        }),
        args = select({
            "//tools:libfuzzer": ["-runs=0", corpus],
            "//conditions:default": [corpus],
        }),
        data = native.glob(["corpus/" + name + "/**"]),
        linkopts = select({
            "//tools:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzz_target"],
        deps = deps,
        **kwargs
    )
