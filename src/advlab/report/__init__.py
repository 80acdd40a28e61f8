"""Figures and a self-contained HTML report of a run."""

from advlab.report.html import write_report

__all__ = ["write_report"]
