"""Reports a person can send: the run report, model cards and the check report, each one
self-contained HTML file (plotly.js, figures and images inline; nothing is fetched when it opens).

* :func:`build_run_report` / :func:`write_run_report` (:mod:`pipeline.report.run_report`): a run.
* :func:`write_model_cards` (:mod:`pipeline.report.model_card`): one model card per detector.
* :func:`check_report_html` / :func:`write_check_report` (:mod:`pipeline.report.check_report`): the
  verdicts on checked photos (``pipeline.checking.FileCheck`` objects).

Built from files only: no module here imports TensorFlow.
"""
from __future__ import annotations

from pipeline.report.check_report import check_report_html, write_check_report
from pipeline.report.model_card import write_model_cards
from pipeline.report.run_report import build_run_report, write_run_report

__all__ = ["build_run_report", "write_run_report", "write_model_cards", "check_report_html", "write_check_report"]
