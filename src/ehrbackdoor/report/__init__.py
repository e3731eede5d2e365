"""The HTML report of an experiment run: `write_report(run_dir)` (reads the results store only)."""

from ehrbackdoor.report.html import build_report, write_report

__all__ = ["build_report", "write_report"]
