"""Benchmark scripts, each run as ``python benchmarks/<script>.py`` (see benchmarks/README.md).

A package so the scripts and the tests import one another's helpers by name
(``from benchmarks.common import bm3d_restore``); ``common`` holds what several scripts share.
Nothing here is part of the installed library.
"""
