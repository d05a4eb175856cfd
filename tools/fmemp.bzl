"""Build macros shared by fmemp's packages."""

load("//tools:copts.bzl", "FMEMP_COPTS")

def fmemp_cc_test(name, srcs = [], copts = [], **kwargs):
    """A cc_test with fmemp's warnings and its sanitizer defaults.

    tools/tsan_suppressions.cc is compiled into the test executable itself:
    TSan only sees __tsan_default_suppressions there, not in a shared library.
    """
    native.cc_test(
        name = name,
        srcs = srcs + ["//tools:tsan_suppressions.cc"],
        copts = FMEMP_COPTS + copts,
        **kwargs
    )
