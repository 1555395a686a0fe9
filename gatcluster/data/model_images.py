"""A stored data set's images as model-input rows, read from disk only when asked for.

Training, evaluation and export index the data set by rows (a large batch, a chunk, a sample).
`ModelImages` answers each request from the memory-mapped `images.npy` (`read_dataset(mapped=True)`)
with positioned reads (pread) of just those rows, so no stage holds all images in memory and a data
set larger than RAM trains in the memory of a small one (`benchmarks/memory.py --dataset-sizes`).
Why not read through the mapping itself: on this kernel (6.18, large page-cache folios) a fault on
one mapped page maps its whole folio, and a random gather of 1,000 rows of a 684 MiB file put
460 MiB into the process's resident memory; the same gather by pread adds 1 MiB.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from gatcluster.data.prepare import check_image_size, to_tensor_nchw


def read_rows(array: np.memmap, idx: np.ndarray) -> np.ndarray:
    """Rows `idx` (any order, repeats allowed) of a memory-mapped .npy array, by positioned reads.

    Consecutive rows are read in one call; nothing is mapped into this process.
    """
    out = np.empty((len(idx), *array.shape[1:]), array.dtype)
    if len(idx) == 0:
        return out
    row_bytes = out[0].nbytes
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    flat = np.empty_like(out)  # in sorted order
    runs = np.flatnonzero(np.diff(sorted_idx) != 1) + 1
    with open(array.filename, "rb", buffering=0) as handle:
        for start, end in zip(np.r_[0, runs], np.r_[runs, len(idx)], strict=True):
            target = memoryview(flat[start:end]).cast("B")
            got = os.preadv(handle.fileno(), [target], array.offset + int(sorted_idx[start]) * row_bytes)
            if got != target.nbytes:
                raise OSError(f"{array.filename} is shorter than its header says: fetch the data again")
    out[order] = flat
    return out


class ModelImages:
    """uint8 rows (n, C', S, S) of a fitted (N, S, S, C) array on request; C' = 3 only for RGB models.

    Behaves like the uint8 tensor `prepare_images` would build (len, shape, integer and slice
    indexing, index tensors) without building it.
    """

    def __init__(self, array: np.ndarray, size: int, grayscale: bool) -> None:
        check_image_size(array, size)
        self.array = array
        self.channels = 3 if not grayscale else array.shape[3]

    def __len__(self) -> int:
        return len(self.array)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C', S, S), as the tensor would have."""
        n, h, w, _ = self.array.shape
        return (n, self.channels, h, w)

    def __getitem__(self, key: slice | int | torch.Tensor | np.ndarray) -> torch.Tensor:
        single = isinstance(key, int | np.integer)
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        if isinstance(key, slice):
            rows_range = range(len(self))[key]
            idx = np.arange(rows_range.start, rows_range.stop, rows_range.step)
        else:
            idx = np.atleast_1d(np.asarray(key))
            idx = np.where(idx < 0, idx + len(self), idx)
        rows = read_rows(self.array, idx) if isinstance(self.array, np.memmap) else self.array[idx]
        x = to_tensor_nchw(rows)
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1).contiguous()
        return x[0] if single else x


class RowPrefetch:
    """Reads the next rows from disk into pinned memory in a background thread (for a CUDA device)."""

    def __init__(self, images: ModelImages, pin: bool = True) -> None:
        self.images, self.pin = images, pin  # pinned memory copies to CUDA asynchronously
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gat-prefetch")
        self.pending: tuple[torch.Tensor, Future] | None = None

    def start(self, idx: torch.Tensor) -> None:
        """Begin reading rows `idx`."""
        self.pending = (idx, self.pool.submit(self.read, idx))

    def read(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows `idx`, in pinned memory when pinning."""
        rows = self.images[idx]
        return rows.pin_memory() if self.pin else rows

    def take(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Rows `idx` on `device`: the prefetched ones when they are these, else read now."""
        if self.pending is not None and torch.equal(self.pending[0], idx):
            rows = self.pending[1].result()
        else:
            rows = self.read(idx)
        self.pending = None
        return rows.to(device, non_blocking=True)

    def close(self) -> None:
        """Stop the background thread (a read in progress finishes first)."""
        self.pending = None
        self.pool.shutdown(wait=True, cancel_futures=True)
