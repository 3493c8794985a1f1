"""A bounded sketch of the values a column has held: a Bloom filter of fixed size.

A profile keeps its top categories by count; a column with thousands of values (a serial
number, a product code) needs more to tell a batch of never-seen values from the
usual few new ones. Keeping every value would make a profile grow with the data; the
filter stays 8 KiB whatever the number of values, merges by OR, and answers "seen?"
with no false negatives and a false-positive share it can estimate (0.2% at 4,000 values,
4% at 10,000). Values are hashed with BLAKE2b, stable across processes and versions.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

import numpy as np

BITS = 1 << 16
"""Size of the filter; each value sets HASHES bits of it (16 bits of one 64-bit digest each)."""
HASHES = 4


def _positions(values: Iterable[str]) -> np.ndarray:
    digests = b"".join(hashlib.blake2b(v.encode(), digest_size=8).digest() for v in values)
    return np.frombuffer(digests, dtype="<u2").reshape(-1, HASHES)


class KnownValues:
    """The values seen, as a Bloom filter over their text."""

    def __init__(self, bits: np.ndarray | None = None) -> None:
        self.bits = np.zeros(BITS // 8, dtype=np.uint8) if bits is None else bits

    @classmethod
    def of(cls, values: Iterable[str]) -> KnownValues:
        sketch = cls()
        positions = _positions(values).ravel()
        flags = np.zeros(BITS, dtype=bool)
        flags[positions] = True
        sketch.bits = np.packbits(flags)
        return sketch

    def contains(self, values: Iterable[str]) -> np.ndarray:
        """For each of `values`, whether it may have been seen (False: certainly never)."""
        positions = _positions(values)
        if positions.size == 0:
            return np.zeros(0, dtype=bool)
        flags = np.unpackbits(self.bits).astype(bool)
        return flags[positions].all(axis=1)

    def false_positive_rate(self) -> float:
        """The share of never-seen values the filter takes for seen, from how full it is."""
        filled = float(np.unpackbits(self.bits).mean())
        return filled**HASHES

    def to_text(self) -> str:
        return base64.b64encode(self.bits.tobytes()).decode()

    @classmethod
    def from_text(cls, text: str) -> KnownValues:
        return cls(np.frombuffer(base64.b64decode(text), dtype=np.uint8).copy())
