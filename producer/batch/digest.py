"""SHA-256 of a batch input's bytes, computed beside the scan that reads them.

    with BackgroundDigest() as digest:
        for block in blocks:
            digest.update(block)       # returns at once; hashed by a thread, in order
            ...                        # scan the block meanwhile
        digest.hexdigest()             # waits for the last block

hashlib lets go of the GIL while it hashes a buffer, so a second thread hashes one block
while the caller scans the next: the check and the cut no longer wait for their digests
(0.04 s of each pass over 80 MB on this machine). At most two blocks are held: `update`
first waits for the block before the last.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType


class BackgroundDigest:
    """A SHA-256 fed block by block, hashed by one thread in the order the blocks came."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest")
        self._pending: Future[None] | None = None

    def __enter__(self) -> BackgroundDigest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, data: bytes | memoryview) -> None:
        """Hash `data` after the blocks before it; the caller must not change it meanwhile."""
        self._wait()
        self._pending = self._thread.submit(self._hash.update, data)

    def hexdigest(self) -> str:
        """The digest of every block given so far."""
        self._wait()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the thread (after the block it is hashing, if any)."""
        self._thread.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None
