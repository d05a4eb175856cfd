#!/usr/bin/env python3
"""Fails when CMake's and Bazel's descriptions of the library disagree.

fmemp is built by Bazel (BUILD.bazel files) and by CMake (CMakeLists.txt).
The library's files are listed in both; this check keeps the lists equal:

  * Bazel side: every file in srcs and hdrs of each cc_library that is not
    testonly, in every BUILD.bazel under tlsf/, sync/ and fmemp/ (test-only
    packages, `package(default_testonly = True)`, are skipped, and so are
    the packages in NOT_LIBRARY_PACKAGES);
  * CMake side: the lists FMEMP_SOURCES (.cc, .c), FMEMP_PUBLIC_HEADERS
    (headers in a Bazel `hdrs`, installed) and FMEMP_PRIVATE_HEADERS (headers
    in a Bazel `srcs`) in CMakeLists.txt.

Each file must be in the CMake list of its kind, and each CMake entry must be
in a Bazel library. The BUILD files are read with Python's parser (Starlark's
syntax is Python's), not evaluated: a library whose srcs or hdrs are not a
plain list of strings, or a rule this script does not know that lists
sources, is reported rather than skipped.

    tools/check_build_drift.py              prints each difference; exits 1
                                            if there is one
    tools/check_build_drift.py --self-test  checks, on a small made-up tree,
                                            that a file added on either side,
                                            a header in the wrong list and an
                                            unreadable BUILD file are caught,
                                            and matching lists are not
"""

import ast
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_ROOTS = ("tlsf", "sync", "fmemp")
# Packages under PACKAGE_ROOTS whose libraries are not part of libfmemp.
NOT_LIBRARY_PACKAGES = {
    # The shared test adapter: not testonly, since benchmarks use it too;
    # CMakeLists.txt builds it for its tests only.
    "fmemp/testing",
}
CMAKE_FILE = "CMakeLists.txt"
CMAKE_LISTS = ("FMEMP_SOURCES", "FMEMP_PUBLIC_HEADERS", "FMEMP_PRIVATE_HEADERS")
SOURCE_SUFFIXES = (".cc", ".c")
HEADER_SUFFIXES = (".h", ".inc")
# Rules that build no library fmemp ships: their sources are not compared.
NON_LIBRARY_RULES = {
    "cc_test", "cc_binary", "fmemp_cc_test", "fmemp_fuzz_test", "sh_test",
    "genrule", "filegroup", "exports_files", "config_setting", "package",
    "load", "glob", "select", "alias",
}


class DriftError(Exception):
    """A BUILD file this script cannot read with certainty."""


def _string_list(node, where):
    if isinstance(node, (ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str)
            for e in node.elts):
        return [e.value for e in node.elts]
    raise DriftError(f"{where}: not a plain list of strings; "
                     "extend tools/check_build_drift.py to read it")


def _is_true(node):
    return isinstance(node, ast.Constant) and node.value is True


def bazel_library_files(build_files):
    """(sources, public_headers, private_headers) of the non-test cc_library
    targets in `build_files`, a list of (package, BUILD text); each a dict
    from repository path to the target that lists it."""
    sources, public, private = {}, {}, {}
    for package, text in build_files:
        if any(package == p or package.startswith(p + "/")
               for p in NOT_LIBRARY_PACKAGES):
            continue
        tree = ast.parse(text, filename=f"{package}/BUILD.bazel")
        calls = [n for n in ast.walk(tree)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        default_testonly = any(
            c.func.id == "package" and any(
                k.arg == "default_testonly" and _is_true(k.value)
                for k in c.keywords)
            for c in calls)
        for call in calls:
            rule = call.func.id
            kwargs = {k.arg: k.value for k in call.keywords if k.arg}
            if rule in NON_LIBRARY_RULES:
                continue
            if rule != "cc_library":
                if "srcs" in kwargs or "hdrs" in kwargs:
                    raise DriftError(
                        f"{package}/BUILD.bazel:{call.lineno}: rule {rule} "
                        "lists sources; tell tools/check_build_drift.py "
                        "whether it builds part of the library")
                continue
            testonly = kwargs.get("testonly")
            if (testonly is not None and _is_true(testonly)) or (
                    testonly is None and default_testonly):
                continue
            name_node = kwargs.get("name")
            name = (name_node.value if isinstance(name_node, ast.Constant)
                    else "?")
            label = f"//{package}:{name}"
            for attr, into in (("srcs", None), ("hdrs", public)):
                if attr not in kwargs:
                    continue
                for entry in _string_list(kwargs[attr], f"{label} {attr}"):
                    if entry.startswith(("//", "@")) or (
                            entry.startswith(":") and
                            not (ROOT / package / entry[1:]).is_file()):
                        raise DriftError(
                            f"{label} {attr}: '{entry}' is a target, not a "
                            "file; extend tools/check_build_drift.py")
                    path = f"{package}/{entry.lstrip(':')}"
                    if into is public:
                        target = public
                    elif path.endswith(SOURCE_SUFFIXES):
                        target = sources
                    elif path.endswith(HEADER_SUFFIXES):
                        target = private
                    else:
                        raise DriftError(f"{label} {attr}: '{entry}' is "
                                         "neither a source nor a header")
                    target[path] = label
    return sources, public, private


def read_build_files():
    found = []
    for top in PACKAGE_ROOTS:
        for build in sorted((ROOT / top).rglob("BUILD.bazel")):
            package = str(build.parent.relative_to(ROOT))
            found.append((package, build.read_text()))
    return found


def cmake_lists(text):
    """The lists CMAKE_LISTS name in CMake code `text`: {name: [entries]}."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    lists = {}
    for name in CMAKE_LISTS:
        matches = re.findall(r"\bset\(\s*%s\b([^)]*)\)" % name, code)
        if len(matches) != 1:
            raise DriftError(f"{CMAKE_FILE}: expected one set({name} ...), "
                             f"found {len(matches)}")
        lists[name] = matches[0].split()
    return lists


def check(build_files, cmake_text):
    """The differences between the two descriptions, as messages."""
    sources, public, private = bazel_library_files(build_files)
    lists = cmake_lists(cmake_text)
    problems = []
    for name, entries in lists.items():
        for entry in sorted({e for e in entries if entries.count(e) > 1}):
            problems.append(f"{CMAKE_FILE}: {entry} is listed twice in {name}")
    expected = {
        "FMEMP_SOURCES": sources,
        "FMEMP_PUBLIC_HEADERS": public,
        "FMEMP_PRIVATE_HEADERS": private,
    }
    listed_anywhere = {e: n for n, es in lists.items() for e in es}
    for name, files in expected.items():
        listed = set(lists[name])
        for path, label in sorted(files.items()):
            if path in listed:
                continue
            if path in listed_anywhere:
                problems.append(
                    f"{path} ({label}) is in {listed_anywhere[path]} in "
                    f"{CMAKE_FILE}, but belongs in {name}")
            else:
                problems.append(f"{path} ({label}) is missing from {name} "
                                f"in {CMAKE_FILE}")
    in_bazel = set(sources) | set(public) | set(private)
    for name, entries in lists.items():
        for entry in sorted(set(entries) - in_bazel):
            problems.append(f"{entry} is in {name} in {CMAKE_FILE} but in no "
                            "non-test cc_library under "
                            + ", ".join(r + "/" for r in PACKAGE_ROOTS))
    return problems


# A small tree for the self-test: a library, a test-only library, a test,
# and a package of NOT_LIBRARY_PACKAGES, with CMake lists that match.
FIXTURE_BUILDS = [
    ("tlsf", 'load("//tools:fmemp.bzl", "fmemp_cc_test")\n'
             'cc_library(name = "heap", srcs = ["heap.cc", "bits.h"],\n'
             '           hdrs = ["heap.h"], copts = FMEMP_COPTS)\n'
             'cc_library(name = "util", testonly = True, hdrs = ["util.h"])\n'
             'fmemp_cc_test(name = "heap_test", srcs = ["heap_test.cc"])\n'),
    ("fmemp/testing", 'cc_library(name = "front_end", '
                      'srcs = ["front_end.cc"], hdrs = ["front_end.h"])\n'),
]
FIXTURE_CMAKE = """
set(FMEMP_SOURCES
  tlsf/heap.cc  # a comment
)
set(FMEMP_PUBLIC_HEADERS
  tlsf/heap.h
)
set(FMEMP_PRIVATE_HEADERS
  tlsf/bits.h
)
"""


def self_test():
    ok = True

    def expect(what, builds, cmake_text, count):
        nonlocal ok
        try:
            problems = check(builds, cmake_text)
        except DriftError as e:
            problems = [f"DriftError: {e}"]
        if len(problems) != count:
            print(f"self-test: {what}: expected {count} problem(s), got "
                  f"{problems}")
            ok = False

    def expect_error(what, builds):
        nonlocal ok
        try:
            check(builds, FIXTURE_CMAKE)
        except DriftError:
            return
        print(f"self-test: {what}: not reported")
        ok = False

    expect("the fixture", FIXTURE_BUILDS, FIXTURE_CMAKE, 0)
    expect("a library added in Bazel only", FIXTURE_BUILDS + [
        ("fmemp/extra", 'cc_library(name = "x", srcs = ["x.cc"], '
                        'hdrs = ["x.h"])')], FIXTURE_CMAKE, 2)
    expect("test-only libraries", FIXTURE_BUILDS + [
        ("fmemp/tests_only", 'package(default_testonly = True)\n'
                             'cc_library(name = "t", srcs = ["t.cc"])')],
           FIXTURE_CMAKE, 0)
    expect("a source in CMake only", FIXTURE_BUILDS, FIXTURE_CMAKE.replace(
        "  tlsf/heap.cc", "  tlsf/heap.cc\n  tlsf/gone.cc"), 1)
    expect("a source listed twice", FIXTURE_BUILDS, FIXTURE_CMAKE.replace(
        "  tlsf/heap.cc", "  tlsf/heap.cc tlsf/heap.cc"), 1)
    expect("a public header in the private list", FIXTURE_BUILDS,
           FIXTURE_CMAKE.replace("  tlsf/heap.h\n", "").replace(
               "  tlsf/bits.h", "  tlsf/bits.h tlsf/heap.h"), 1)
    expect("a private header missing", FIXTURE_BUILDS,
           FIXTURE_CMAKE.replace("  tlsf/bits.h", ""), 1)
    expect_error("an unknown rule with sources", FIXTURE_BUILDS + [
        ("fmemp/extra", 'my_rule(name = "m", srcs = ["m.cc"])')])
    expect_error("computed srcs", FIXTURE_BUILDS + [
        ("fmemp/extra", 'cc_library(name = "c", srcs = SRCS + ["c.cc"])')])
    expect_error("a globbed srcs", FIXTURE_BUILDS + [
        ("fmemp/extra", 'cc_library(name = "g", srcs = glob(["*.cc"]))')])
    print("check_build_drift self-test:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if sys.argv[1:]:
        print(__doc__)
        return 2
    try:
        builds = read_build_files()
        problems = check(builds, (ROOT / CMAKE_FILE).read_text())
    except DriftError as e:
        print(f"check_build_drift: {e}")
        return 1
    for p in problems:
        print(p)
    print(f"check_build_drift: {len(builds)} BUILD files, "
          f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
