"""Audit the locked dependencies for known vulnerabilities with pip-audit.

    .venv/bin/python ops/audit_dependencies.py

Exports uv.lock to a requirements list and asks pip-audit about every pinned version.
Exit 1 when a vulnerability is reported. When the advisory database cannot be reached
(machines without internet, like the development and CI machines here), nothing is audited:
the script says so in capitals and exits 0, since a missing network is not a finding. To
audit for real, run `make security` (or this script) on a machine that reaches PyPI's
advisory database (pypi.org) or OSV (`PIP_AUDIT_VULNERABILITY_SERVICE=osv`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def locked_requirements(target: Path) -> None:
    uv = shutil.which("uv") or "uv"
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--format",
         "requirements-txt"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    target.write_text(exported.stdout)


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        requirements = Path(folder) / "requirements.txt"
        locked_requirements(requirements)
        audit = subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", str(requirements), "--no-deps",
             "--disable-pip", "--progress-spinner", "off", "-f", "json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    try:
        report = json.loads(audit.stdout)
    except json.JSONDecodeError:
        print(f"audit: NOTHING AUDITED: pip-audit gave no report ({audit.stderr.strip()[-200:]})")
        return 0
    return summarise(report["dependencies"])


def summarise(dependencies: list[dict[str, Any]]) -> int:
    """Print the findings; 1 when a dependency has a known vulnerability."""
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"audit: {dependency['name']} {dependency.get('version', '')}: {ids}")
    audited = len(dependencies) - len(skipped)
    if skipped and not audited:
        print(
            f"audit: NOTHING AUDITED: none of the {len(dependencies)} locked dependencies could "
            "be checked (the advisory database is unreachable from this machine); run "
            "`make security` where pypi.org is reachable"
        )
    elif skipped:
        print(
            f"audit: WARNING {len(skipped)} of {len(dependencies)} dependencies could not be "
            "audited"
        )
    print(f"audit: {audited} audited, {len(vulnerable)} with known vulnerabilities")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
