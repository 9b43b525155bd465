"""The README stays short, the documentation's links lead somewhere, and every setting is
documented.

- README.md is at most README_MAX_LINES lines: the rest belongs in docs/.
- Every relative link (and image) in README.md and docs/*.md names a file that exists, and
  a `#anchor` names a heading (GitHub's slug) or an explicit `<a id="...">` of that file.
- Every field of the settings model is documented, by its environment variable, in the
  Settings table of docs/configuration.md, and that table names no variable the model lacks.
- Every page in docs/ is linked from the README and from docs/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT
from worker.contract.settings import Settings  # the one place that names the settings module

README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
README_MAX_LINES = 220

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...
ENV_NAME = re.compile(r"`(ZIPSCORE_[A-Z0-9_]+)`")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: its headings' slugs (repeats numbered as GitHub does)
    and explicit `<a id>` / `<a name>` targets."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images in prose (not in code)."""
    return [
        target for line in prose_lines(text) for target in LINK.findall(INLINE_CODE.sub("", line))
    ]


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of `page`, one line each (paths from `root`)."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if not target or EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}: ({target})"
        if not destination.exists():
            problems.append(f"{where} names no file")
        elif anchor and destination.suffix == ".md":
            if anchor not in anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{where} names no heading of {destination.name}")
        elif anchor:
            problems.append(f"{where} has an anchor into a file that is not Markdown")
    return problems


def section(text: str, title: str) -> str:
    """The body of the `## title` section of a Markdown text, up to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"no '## {title}' section"
    return match.group(1)


def setting_variables() -> set[str]:
    """The environment variable of every field of the settings model."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {
        f"{prefix}{field.alias or name}".upper() for name, field in Settings.model_fields.items()
    }


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_every_setting_is_documented() -> None:
    documented = set(ENV_NAME.findall(section(CONFIGURATION.read_text("utf-8"), "Settings")))
    variables = setting_variables()
    assert sorted(variables - documented) == [], "settings missing from docs/configuration.md"
    assert sorted(documented - variables) == [], "docs/configuration.md names unknown settings"


def test_every_page_is_reachable_from_both_indexes() -> None:
    for index in (README, DOCS / "README.md"):
        linked = {
            (index.parent / target.partition("#")[0]).resolve()
            for target in links(index.read_text(encoding="utf-8"))
            if not EXTERNAL.match(target)
        }
        unlinked = [
            page.name
            for page in DOCS.glob("*.md")
            if page.name != "README.md" and page.resolve() not in linked
        ]
        assert unlinked == [], f"{index.relative_to(ROOT)} does not link {unlinked}"


# The checks themselves: each finds what it is there to find.


def test_slugs_follow_github() -> None:
    assert slug("Guarantees, and how they are met") == "guarantees-and-how-they-are-met"
    assert slug("Soak (`ops/drills/soak.py`)") == "soak-opsdrillssoakpy"
    assert slug("The [gateway](gateway.md) & *HEAD*") == "the-gateway--head"
    assert slug("Files that change_underfoot") == "files-that-change_underfoot"


def test_anchors_number_repeats_and_skip_code() -> None:
    text = '# Title\n## Benchmark\n## Benchmark\n```\n# not a heading\n```\n<a id="here"></a>\n'
    assert anchors(text) == {"title", "benchmark", "benchmark-1", "here"}


def test_links_skip_code_and_keep_images() -> None:
    text = "[a](a.md) `[b](b.md)` ![c](c.png)\n```\n[d](d.md)\n```\n[e](https://x.org/#y)"
    assert links(text) == ["a.md", "c.png", "https://x.org/#y"]


def test_broken_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n## Part two\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#part-two) [self](#top) [gone](missing.md) [bad](other.md#part-three)\n"
        "# Top\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == [
        "page.md: (missing.md) names no file",
        "page.md: (other.md#part-three) names no heading of other.md",
    ]


def test_a_missing_setting_is_found() -> None:
    text = CONFIGURATION.read_text("utf-8").replace("`ZIPSCORE_BATCH_POLL_SECONDS`", "")
    documented = set(ENV_NAME.findall(section(text, "Settings")))
    assert setting_variables() - documented == {"ZIPSCORE_BATCH_POLL_SECONDS"}


REPO_PATH = re.compile(r"`((?:worker|producer|ops|tests|exercises|docs)/[\w./-]*\w/?)(?:::\w+)?`")


def named_paths(text: str) -> set[str]:
    """Paths of the repository a page names in code spans (`worker/lookups/tasks.py`)."""
    return set(REPO_PATH.findall(text))


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_every_path_a_page_names_exists(page: Path) -> None:
    missing = sorted(path for path in named_paths(page.read_text()) if not (ROOT / path).exists())
    assert missing == [], f"{page.name} names paths that are not in the tree"


def test_named_paths_are_found_with_or_without_a_test_name() -> None:
    text = "see `worker/contract/errors.py` and `tests/unit/cli/test_batch.py::test_x`, `x/y.py`"
    assert named_paths(text) == {"worker/contract/errors.py", "tests/unit/cli/test_batch.py"}
