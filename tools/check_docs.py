#!/usr/bin/env python3
"""Fails when README.md or docs/*.md name something that does not exist.

Checked, in every line of README.md and docs/*.md:
  * repository paths (fmemp/thread_heap.h, tests/stress/, tools/bench.sh):
    the file or folder must be tracked by git, or ignored by it (outputs
    such as bench/compare/results/ that a script writes);
  * Bazel labels (//fmemp:pmr_test, //tests/stress:stress_test): the
    package's BUILD.bazel must declare the name (a `name = "..."` line, or
    a name that a macro there builds from a format string);
  * C API names (FMempMalloc, FMempUsage, FMEMP_POLICY_MUTEX): the public
    headers (fmemp/fmemp.h, fmemp/sdk/*.h) must declare them; a name written
    as a call (FMempFoo(...)) must be there, other names (environment
    variables such as FMEMP_STRESS_SECONDS, test names, CMake options) may
    instead be found in the tracked sources.

    tools/check_docs.py        prints each dangling name with file:line;
                               exits 1 if there is one
    tools/check_docs.py --self-test
                               checks that a made-up path, target and C
                               function are each caught, and real ones not

A line may opt out with `<!-- check_docs: skip -->` (for names a doc
mentions on purpose as absent, say a removed function in a change log).
"""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOP_DIRS = ("fmemp", "tlsf", "sync", "bench", "fuzz", "tests", "tools",
            "examples", "docs", "third_party")
PATH_RE = re.compile(r"(?<![\w/.@-])((?:%s)/[\w./-]*)" % "|".join(TOP_DIRS))
LABEL_RE = re.compile(r"(?<![\w/])(?:@\w+)?//([\w/]+)(?::([\w.+-]+))?")
C_NAME_RE = re.compile(r"\b(FMemp[A-Z]\w*|FMEMP_[A-Z0-9_]*[A-Z0-9])\b")
SKIP_MARK = "check_docs: skip"
SELF = "tools/check_docs.py"
PUBLIC_HEADERS = ["fmemp/fmemp.h"] + [
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "fmemp/sdk").glob("*.h"))
]


def git_lines(*args):
    out = subprocess.run(["git", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return out.splitlines()


def tracked_paths():
    files = set(git_lines("ls-files"))
    dirs = set()
    for f in files:
        parts = f.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return files, dirs


def is_ignored(path):
    """True if git ignores `path`, present or not: a folder a script creates
    (bench/programs/third_party/) may be absent on a clean clone, and a
    directory-only pattern matches it only when written with its slash."""
    for candidate in (path, path + "/"):
        if subprocess.run(["git", "check-ignore", "-q", "--no-index",
                           candidate], cwd=ROOT).returncode == 0:
            return True
    return False


def declared_names(package):
    build = ROOT / package / "BUILD.bazel"
    if not build.exists():
        build = ROOT / package / "BUILD"
    if not build.exists():
        return None
    text = build.read_text()
    names = set(re.findall(r'\bname\s*=\s*"([^"]+)"', text))
    # Names a macro builds from a format ("ftypes_%s_%s_test" % ...), kept as
    # patterns.
    patterns = [re.compile("^" + re.escape(n).replace("%s", r"\w+") + "$")
                for n in re.findall(r'"([\w%]*%s[\w%]*)"', text)]
    # ... or by concatenation (name = "compare_" + malloc).
    patterns += [re.compile("^" + re.escape(n) + r"\w+$")
                 for n in re.findall(r'\bname\s*=\s*"([^"]+)"\s*\+', text)]
    # Files of the package are labels too.
    files = {p.name for p in (ROOT / package).iterdir() if p.is_file()}
    return names | files, patterns


def public_c_names():
    names = set()
    for header in PUBLIC_HEADERS:
        names.update(C_NAME_RE.findall((ROOT / header).read_text()))
    return names


def source_c_names(files):
    """Names the sources use though the public headers do not declare them:
    environment variables (FMEMP_STRESS_SECONDS), test names and CMake
    options (FMEMP_SANITIZER, in CMakeLists.txt)."""
    names = set()
    for f in files:
        if f == SELF:  # its self-test names made-up ones on purpose
            continue
        if f.endswith((".h", ".cc", ".c", ".sh", ".py", ".bzl", ".bazel",
                       ".cmake", "CMakeLists.txt")):
            path = ROOT / f
            if path.is_file():
                names.update(C_NAME_RE.findall(path.read_text(errors="replace")))
    return names


def check(docs):
    """The dangling names in `docs` (a list of (name, text)), as messages."""
    files, dirs = tracked_paths()
    c_names = public_c_names()
    other_names = source_c_names(files)
    problems = []
    for rel, text in docs:
        for number, line in enumerate(text.splitlines(), 1):
            if SKIP_MARK in line:
                continue
            where = f"{rel}:{number}"
            for match in PATH_RE.finditer(line):
                path = match.group(1).rstrip(".,;:)").rstrip("/")
                if any(c in path for c in "*<{") or path.endswith(("_", "-")):
                    continue
                if path in files or path in dirs or is_ignored(path):
                    continue
                # A target written as a path (fmemp/region_set).
                package, _, name = path.rpartition("/")
                declared = declared_names(package) if package in dirs else None
                if declared is not None and name in declared[0]:
                    continue
                problems.append(f"{where}: no such path '{path}'")
            for match in LABEL_RE.finditer(line):
                package, name = match.group(1).rstrip("/"), match.group(2)
                if package in ("", "...") or package.endswith("..."):
                    continue
                declared = declared_names(package)
                if declared is None:
                    problems.append(f"{where}: no Bazel package '//{package}'")
                    continue
                if name is None or name in ("all", "*"):
                    continue
                names, patterns = declared
                if name in names or any(p.match(name) for p in patterns):
                    continue
                problems.append(f"{where}: no Bazel target '//{package}:{name}'")
            for name in C_NAME_RE.findall(line):
                if name in c_names:
                    continue
                # Not API, but real: an environment variable or a test the
                # sources define.
                if name not in other_names or re.search(
                        re.escape(name) + r"\s*\(", line):
                    problems.append(f"{where}: '{name}' is not in the C API "
                                    f"({', '.join(PUBLIC_HEADERS)})")
    return problems


def self_test():
    good = ("`fmemp/thread_heap.h`, //fmemp:pmr_test, `fmemp/region_set`, "
            "FMempMalloc(), FMEMP_POLICY_MUTEX, FMEMP_STRESS_SECONDS, "
            "bench/programs/third_party/ (ignored, absent on a clean clone)")
    bad = ["`fmemp/no_such_file.h`", "//fmemp:no_such_test",
           "//no_such_package:x", "FMempNoSuchCall()", "FMEMP_NO_SUCH_NAME"]
    ok = True
    if check([("good", good)]):
        print("self-test: real names reported:", check([("good", good)]))
        ok = False
    for line in bad:
        if len(check([("bad", line)])) != 1:
            print(f"self-test: '{line}' not reported exactly once")
            ok = False
    print("check_docs self-test:", "passed" if ok else "FAILED")
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    docs = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    problems = check([(d.relative_to(ROOT), d.read_text()) for d in docs])
    for p in problems:
        print(p)
    print(f"check_docs: {len(docs)} files, {len(problems)} dangling names")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
