"""Report pages of runs: plots drawn from a run directory's files, assembled into self-contained HTML.

- `results`: a run's files read once; `report`: the run page and the comparison page; `page`: the page
  machinery; `plots`: one function per plot.
- `sections` (single-label), `findings` (multi-label), `segment` (segmentation), `mistakes` (images with
  their maps), `guard` (does the data look like the training images?) and `search` (how ``medtune tune`` chose
  the run): the sections of a run's page.
- `audit`, `crossdomain`, `similar`: the pages of ``data audit``, ``crossdomain`` and ``similar --page``.
"""

from medtune.reports.report import create_comparison, create_report, write_run_report
from medtune.reports.results import RunResults, read_results

__all__ = ["RunResults", "create_comparison", "create_report", "read_results", "write_run_report"]
