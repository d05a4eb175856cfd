"""The external repositories fmemp needs, for any workspace that builds it.

A workspace that uses fmemp (see docs/USING.md) declares fmemp and then calls
fmemp_dependencies():

    local_repository(name = "fmemp", path = "/path/to/fmemp")
    load("@fmemp//tools:deps.bzl", "fmemp_dependencies")
    fmemp_dependencies()

Everything comes from Debian packages or from fmemp's own tree, as in fmemp's
WORKSPACE, so the build stays offline (tools/setup.sh installs the packages
and unpacks Abseil). A repository the workspace has already declared under the
same name is left alone, so a workspace may bring its own Abseil or
GoogleTest by declaring it before the call.
"""

# Where Debian's packages and tools/setup.sh put the sources.
_DEBIAN_PATHS = {
    "rules_java": "/usr/share/bazel/rules/java",
    "bazel_skylib": "/usr/share/bazel/tools/skylib",
    "platforms": "/usr/share/bazel/tools/platforms",
    "com_google_absl": "/opt/fmemp-deps/abseil-cpp",
}

def _tree_in_fmemp_impl(ctx):
    # The directory holding `marker`, inside whichever checkout of fmemp
    # loaded this file, mirrored entry by entry.
    tree = ctx.path(ctx.attr.marker).dirname
    for entry in tree.readdir():
        ctx.symlink(entry, entry.basename)

# A repository made of a directory of fmemp's tree. local_repository needs a
# path, and a relative one would be resolved against the calling workspace,
# not against fmemp; a label resolves against fmemp wherever it is.
_tree_in_fmemp = repository_rule(
    implementation = _tree_in_fmemp_impl,
    attrs = {"marker": attr.label(allow_single_file = True, mandatory = True)},
    local = True,
)

def fmemp_dependencies():
    """Declares every repository fmemp's targets and Bazel 4's C++ rules use.

    rules_java, bazel_skylib, platforms: Debian's Bazel 4 rule packages.
    rules_cc: fmemp's forwarding shim (Debian's rules_cc is too new for Bazel 4).
    remote_coverage_tools: empty filegroups that every cc_test asks for.
    com_google_absl: Abseil's source, unpacked by tools/setup.sh.
    com_google_googletest: Debian's googletest sources with fmemp's BUILD file.
    """
    existing = native.existing_rules()
    for name, path in _DEBIAN_PATHS.items():
        if name not in existing:
            native.local_repository(name = name, path = path)
    if "rules_cc" not in existing:
        _tree_in_fmemp(
            name = "rules_cc",
            marker = Label("//third_party/rules_cc:WORKSPACE"),
        )
    if "remote_coverage_tools" not in existing:
        _tree_in_fmemp(
            name = "remote_coverage_tools",
            marker = Label("//third_party/remote_coverage_tools:WORKSPACE"),
        )
    if "com_google_googletest" not in existing:
        native.new_local_repository(
            name = "com_google_googletest",
            build_file = str(Label("//third_party:googletest.BUILD")),
            path = "/usr/src/googletest",
        )
