"""Grid cells cut into chunks: the auction's search cells over the tasks."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]


def chunked_cells(cell: IntArray, offsets: NDArray[np.float64], chunk: int
                  ) -> tuple[IntArray, IntArray, IntArray]:
    """Sort points by (cell, offset) and cut each cell into chunks of at most ``chunk`` points,
    cheapest offset first (so hundreds of coincident points do not form one huge group).

    Args:
        cell: (n,) integer cell key of every point.
        offsets: (n,) sort key inside a cell.
        chunk: most points in one chunk.

    Returns:
        order (n,): point indices, chunk by chunk; start (C + 1,): chunk c holds
        ``order[start[c]:start[c + 1]]``; chunk_of (n,): the chunk of every point.
    """
    n = cell.shape[0]
    order = np.lexsort((offsets, cell)).astype(np.int64)
    c = cell[order]
    first = np.ones(n, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    run_start = np.flatnonzero(first)
    rank = np.arange(n) - np.repeat(run_start, np.diff(np.append(run_start, n)))
    new = first | (rank % chunk == 0)
    start = np.append(np.flatnonzero(new), n).astype(np.int64)
    chunk_of = np.empty(n, np.int64)
    chunk_of[order] = np.cumsum(new) - 1
    return order, start, chunk_of
