"""One self-contained HTML report of a whole audit (``fakeseg report``)."""

from __future__ import annotations

from fakeseg.reporting.html import Found, Region, find_results, report, top_regions

__all__ = ["Found", "Region", "find_results", "report", "top_regions"]
