"""Report pages of runs: plots drawn from a run directory's files, assembled into self-contained HTML."""

from medtune.reports.report import create_comparison, create_report, write_run_report
from medtune.reports.results import RunResults, read_results

__all__ = ["RunResults", "create_comparison", "create_report", "read_results", "write_run_report"]
