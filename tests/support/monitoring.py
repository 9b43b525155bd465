"""The monitoring files' PromQL, read back: the dashboard's expressions and the series they read."""

from __future__ import annotations

import json
import re

from tests.support.paths import ROOT

MONITORING = ROOT / "ops" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "zipscore.json"
LABELS = ("le", "source", "queue_name", "name", "question", "outcome", "job", "state", "base_year")
PROMQL_WORDS = {
    "sum", "max", "min", "by", "rate", "increase", "histogram_quantile", "absent", "and",
    "on", "or", "le", "count", "avg",
}  # fmt: skip


def dashboard_expressions() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def series_names(expression: str) -> set[str]:
    """The metric names an expression reads (label names and values taken out first)."""
    bare = re.sub(r"\{[^}]*\}", "", expression)
    labels = "|".join(LABELS)
    bare = re.sub(rf"\((?:{labels})(?:, ?\w+)*\)", "", bare)  # by (...) lists
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    words = set(re.findall(r"[a-z_][a-z0-9_]*", bare))
    return words - PROMQL_WORDS
