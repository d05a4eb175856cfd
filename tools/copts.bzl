"""Compiler options shared by every fmemp target."""

# Warnings are errors in project code under both g++ and clang. Third-party
# code (Abseil, GoogleTest) keeps its own flags.
FMEMP_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
]

# C sources (the C API compile tests) get the same warnings, in C11.
FMEMP_CONLYOPTS = FMEMP_COPTS + ["-std=c11"]
