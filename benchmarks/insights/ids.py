"""Event and session ids, built as numpy code-point matrices: millions of ids without a Python loop."""

from __future__ import annotations

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).astype(np.uint32)


def uuid7_matrix(ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """UUIDv7-shaped ids (time-ordered by ``ms``, random bits from ``rng``) as an (n, 36) array of
    code points; ``.view('<U36')`` gives the strings without a Python loop."""
    n = len(ms)
    hi = (
        (ms.astype(np.uint64) << np.uint64(16))
        | np.uint64(0x7000)
        | rng.integers(0, 4096, n, dtype=np.uint64)
    )
    lo = np.uint64(0x8000000000000000) | rng.integers(0, 2**62, n, dtype=np.uint64)
    b = np.concatenate(
        [hi.astype(">u8").view(np.uint8).reshape(n, 8), lo.astype(">u8").view(np.uint8).reshape(n, 8)], axis=1
    )
    nib = np.empty((n, 32), dtype=np.uint8)
    nib[:, 0::2] = b >> 4
    nib[:, 1::2] = b & 15
    chars = _HEX[nib]
    out = np.empty((n, 36), dtype=np.uint32)
    out[:, 8] = out[:, 13] = out[:, 18] = out[:, 23] = ord("-")
    out[:, 0:8], out[:, 9:13], out[:, 14:18] = chars[:, 0:8], chars[:, 8:12], chars[:, 12:16]
    out[:, 19:23], out[:, 24:36] = chars[:, 16:20], chars[:, 20:32]
    return out


def strings(matrix: np.ndarray) -> np.ndarray:
    """The rows of a code-point matrix as a string array."""
    m = np.ascontiguousarray(matrix, dtype=np.uint32)
    return m.view(f"<U{m.shape[1]}").ravel()


def suffixed(matrix: np.ndarray, suffix: str) -> np.ndarray:
    """The rows of a code-point matrix with ``suffix`` appended, as a string array."""
    tail = np.tile(np.array([ord(c) for c in suffix], dtype=np.uint32), (len(matrix), 1))
    return strings(np.concatenate([matrix, tail], axis=1))
