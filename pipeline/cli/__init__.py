"""The commands of ``python -m pipeline``, one module per group: :mod:`~pipeline.cli.train` (train, evaluate,
experiment), :mod:`~pipeline.cli.predict` (predict), :mod:`~pipeline.cli.reports` (info, report, inspect), and
:mod:`~pipeline.cli.common` (what they share). The argument parser and the dispatch stay in ``pipeline/__main__.py``.
"""
