"""Where things are: the repository root, the sample risk table, the screenshot folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_TABLE = ROOT / "ops" / "sample_data" / "risk-table.sample.csv"
SCREENSHOTS = ROOT / "reports" / "screenshots"
FIXTURES = ROOT / "tests" / "fixtures"
