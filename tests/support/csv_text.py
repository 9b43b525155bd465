"""CSV text for batch tests: hypothesis strategies for fields and zipcodes, and a file
written from bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# Any text but NUL and a lone CR (csv.writer leaves "\r" unquoted with "\n" line endings,
# which makes an ambiguous file); quotes, commas and line feeds in fields are all covered.
field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00\r"),
    max_size=8,
)


zipcode_text = st.one_of(
    st.integers(min_value=0, max_value=12_000).map(str), st.sampled_from(["", "abc", " 9000"])
)
