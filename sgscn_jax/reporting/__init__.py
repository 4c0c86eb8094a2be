"""What a person looks at: overlays and montages (`overlays`), charts (`charts`), tables
(`tables`), summaries (`summary`), the run's HTML page (`html_report`), progress
(`progress`), and what a command prints (`console`, used by the scripts' `main`).

The public names below are re-exported from the modules that define them:

    from sgscn_jax.reporting import overlay, montage, write_report
"""

from sgscn_jax.reporting.charts import bar_chart, case_grid, mask_panel, segment_panel
from sgscn_jax.reporting.html_report import write_report
from sgscn_jax.reporting.overlays import (label_colours, montage, orthogonal_overlay, outline,
                                          overlay, to_rgb_uint8)
from sgscn_jax.reporting.progress import ProgressBar
from sgscn_jax.reporting.summary import run_markdown, summary_markdown
from sgscn_jax.reporting.tables import (METRICS, Column, Metric, copy_stamped, paired_difference,
                                        paired_text, paper_figures, stamp_line, table_markdown)

__all__ = [
    "Column", "METRICS", "Metric", "ProgressBar", "bar_chart", "case_grid", "copy_stamped",
    "label_colours", "mask_panel", "montage", "orthogonal_overlay", "outline", "overlay",
    "paired_difference", "paired_text", "paper_figures", "run_markdown", "segment_panel",
    "stamp_line", "summary_markdown", "table_markdown", "to_rgb_uint8", "write_report",
]
