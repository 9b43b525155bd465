"""A scored chunk's output bytes: each row as it came, then its suffix and the newline.

    out = assemble(buf, starts, ends, ids, suffixes=[b",A,ok,"], newline="\\n")

Used by `worker.batch.fast_scoring`, which finds the rows and each row's suffix id.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

LF = 10

Ints = npt.NDArray[np.int64]
Bytes = npt.NDArray[np.uint8]


def assemble(
    buf: Bytes, starts: Ints, ends: Ints, ids: Ints, *, suffixes: list[bytes], newline: str
) -> bytes:
    """Each row's bytes (`starts[r]` to `ends[r]`, without its line ending), then its suffix
    `suffixes[ids[r]]` and `newline`.

    Where every row already ends with `newline`, the suffixes are only slipped in before
    those line endings; otherwise the line endings are dropped and each suffix brings
    `newline` with it.
    """
    ending = newline.encode()
    gap = np.append(starts[1:], buf.size) - ends
    if bool(np.all(gap == len(ending))) and buf[buf.size - 1] == LF:
        # Every line ending is `newline` (a `\r` before a `\n` is only ever part of it).
        return insert(buf, ends, ids, suffixes)
    tails = [suffix + ending for suffix in suffixes]
    keep = np.ones(buf.size, dtype=np.bool_)  # the chunk less its line endings
    keep[ends[gap >= 1]] = False
    keep[ends[gap >= 2] + 1] = False
    return insert(buf[keep], np.cumsum(ends - starts), ids, tails)


def insert(text: Bytes, at_bytes: Ints, ids: Ints, pieces: list[bytes]) -> bytes:
    """`text` with piece `ids[r]` slipped in before its byte `at_bytes[r]` (ascending).

    The text keeps its order around the pieces: the j-th piece byte lands at j plus
    `at_bytes` of its row; the pieces are gathered from a pool of the distinct ones.
    """
    piece_len = np.array([len(piece) for piece in pieces], dtype=np.int64)
    pool = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    lengths = piece_len[ids]
    ramp = np.arange(int(lengths.sum()), dtype=np.int64)
    at = ramp + np.repeat(at_bytes, lengths)
    # Where each row's piece starts in the pool, less where it starts among all pieces.
    shift = (np.cumsum(piece_len) - piece_len)[ids] - (np.cumsum(lengths) - lengths)
    source = ramp + np.repeat(shift, lengths)
    out = np.empty(text.size + ramp.size, dtype=np.uint8)
    is_piece = np.zeros(out.size, dtype=np.bool_)
    is_piece[at] = True
    out[~is_piece] = text
    out[at] = pool[source]
    return out.tobytes()
