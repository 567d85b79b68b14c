"""The benchmark suite: ``python -m benchmarks`` (see ``benchmarks/__main__.py`` and ``docs/performance.md``).

Every figure is a ratio against a baseline measured in the same run, repeated; nothing here is asserted by the
test suite.
"""
