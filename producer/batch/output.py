"""A batch job's output file: a partial file beside the target, cut back to the last chunk
written on a resume, fsynced and renamed over the target once every chunk is in."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from producer.batch.header import BOM
from producer.batch.prescan import InputLayout
from worker.contract.batch_output import output_header
from worker.contract.errors import ErrorCode, ZipscoreError


def output_target(output: Path, source: os.stat_result) -> Path:
    """Where the output goes (its real path), refused unless it can be a new regular file.

    Raises:
        ZipscoreError: BAD_INPUT_FILE if its directory is missing, or it exists and is the
            input itself (same inode: a hard link, a symlink), a directory or a device.
    """
    try:
        target = output.resolve()
        parent_is_dir = target.parent.is_dir()
        found: os.stat_result | None = os.stat(target) if target.exists() else None
    except (OSError, RuntimeError) as exc:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE,
            f"{output}: not a usable output path ({getattr(exc, 'strerror', None) or exc})",
        ) from None
    if not parent_is_dir:
        raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{output}: no such directory for the output")
    if found is not None:
        if (found.st_dev, found.st_ino) == (source.st_dev, source.st_ino):
            raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, "the output would overwrite the input")
        if not stat.S_ISREG(found.st_mode):
            kind = "a directory" if stat.S_ISDIR(found.st_mode) else "not a regular file"
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE, f"{output}: {kind}; the output must be a file path"
            )
    return target


def create_partial(output: Path, target: Path, job: str) -> Path:
    """The job's partial output beside `target`, created empty (proving it can be written)."""
    partial = target.with_name(f".{target.name[:160]}.{job}.part")
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        # A full disk is the server's state, not the caller's choice of path.
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE if full else ErrorCode.BAD_INPUT_FILE,
            f"{output}: cannot create a file in {target.parent} "
            f"({exc.strerror or type(exc).__name__})",
        ) from None
    return partial


def is_published(record: dict[str, str], layout: InputLayout) -> bool:
    """Whether every chunk was written and the output renamed into place already."""
    target = Path(record["output"])
    return (
        bool(record.get("partial"))
        and int(record["input_offset"]) == layout.size
        and not Path(record["partial"]).exists()
        and target.is_file()
        and target.stat().st_size == int(record["output_offset"])
    )


def _partial(record: dict[str, str]) -> Path:
    # A record from before partial files writes its output in place.
    return Path(record.get("partial") or record["output"])


def remove_partial(record: dict[str, str]) -> None:
    if record.get("partial"):
        with contextlib.suppress(OSError):
            Path(record["partial"]).unlink(missing_ok=True)


def publish(sink: BinaryIO, record: dict[str, str]) -> None:
    """Make the finished output durable, then rename it over the target in one step."""
    partial, target = _partial(record), Path(record["output"])
    try:
        sink.flush()
        os.fsync(sink.fileno())
        if partial != target:
            os.replace(partial, target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
    except OSError as exc:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"cannot put the output in place at {target} ({exc.strerror or type(exc).__name__})",
        ) from None


@contextlib.contextmanager
def open_output(record: dict[str, str]) -> Iterator[BinaryIO]:
    """The job's partial output, cut back to the last recorded chunk (or started afresh)."""
    path = _partial(record)
    try:
        sink = _reopen_output(path, record)
    except OSError as exc:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"cannot write the output {path} ({exc.strerror or type(exc).__name__})",
        ) from None
    try:
        yield sink
    finally:
        # Data a failed write left in the buffer fails again at close: the write's error
        # is the one to report. A finished job has flushed and fsynced before this.
        with contextlib.suppress(OSError):
            sink.close()


def _reopen_output(path: Path, record: dict[str, str]) -> BinaryIO:
    offset = int(record["output_offset"])
    if int(record["chunks_done"]) == 0 or offset == 0:
        fresh = path.open("wb")
        with contextlib.ExitStack() as closing:
            closing.callback(fresh.close)
            header = output_header(record["header"]) + record["newline"]
            fresh.write((BOM if record["bom"] == "1" else b"") + header.encode("utf-8"))
            fresh.flush()
            record["output_offset"] = str(fresh.tell())
            closing.pop_all()
        return fresh
    try:
        sink = path.open("r+b")
    except FileNotFoundError:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE,
            f"{path}: the job's partial output is gone: score the file again as a new job",
        ) from None
    with contextlib.ExitStack() as closing:
        closing.callback(sink.close)
        if not stat.S_ISREG(os.fstat(sink.fileno()).st_mode):
            raise ZipscoreError(ErrorCode.BAD_INPUT_FILE, f"{path}: not a regular file")
        if os.fstat(sink.fileno()).st_size < offset:
            raise ZipscoreError(
                ErrorCode.BAD_INPUT_FILE,
                f"{path} is shorter than the {offset} bytes already written: score it again",
            )
        sink.truncate(offset)
        sink.seek(offset)
        closing.pop_all()
    return sink
