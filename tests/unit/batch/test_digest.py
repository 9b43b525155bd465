"""The check's and the cut's digests, hashed by a thread beside the scan
(producer/batch/digest.py)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from producer.batch.digest import BackgroundDigest


def digest_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("digest")]


def test_the_digest_is_sha256_of_the_blocks_in_the_order_given() -> None:
    blocks = [os.urandom(n) for n in (0, 1, 5000, 3 * 1024 * 1024, 17)]
    with BackgroundDigest() as digest:
        for block in blocks:
            digest.update(block)
        digest.update(memoryview(b"a view"))
        expected = hashlib.sha256(b"".join(blocks) + b"a view").hexdigest()
        assert digest.hexdigest() == expected
        assert digest.hexdigest() == expected  # asking again changes nothing
    assert not digest_threads()


def scan_that_fails() -> None:
    with BackgroundDigest() as digest:
        digest.update(os.urandom(1024 * 1024))
        raise RuntimeError("the scan refused the file")


def test_the_thread_stops_when_the_scan_fails() -> None:
    with pytest.raises(RuntimeError):
        scan_that_fails()
    assert not digest_threads()
