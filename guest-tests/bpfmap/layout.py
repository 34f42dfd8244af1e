"""How a map's values look in user memory (plain or one slot per CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .constants import PERCPU_MAP_TYPES
from .cpus import num_possible_cpus

Value = bytes | list[bytes]
"""A looked-up value: bytes, or for per-CPU maps one bytes per possible CPU."""

ValueIn = bytes | bytearray | memoryview | Sequence[bytes]


def round_up8(n: int) -> int:
    """round_up(n, 8): the kernel's per-CPU slot stride."""
    return (n + 7) & ~7


@dataclass(frozen=True, slots=True)
class ValueLayout:
    """Value buffer geometry: ``stride`` bytes per slot, ``slots`` slots."""

    value_size: int
    percpu: bool
    slots: int

    @classmethod
    def for_map(cls, map_type: int, value_size: int) -> ValueLayout:
        """The layout the kernel uses for ``map_type``'s values."""
        if map_type in PERCPU_MAP_TYPES:
            return cls(value_size, True, num_possible_cpus())
        return cls(value_size, False, 1)

    @property
    def stride(self) -> int:
        return round_up8(self.value_size) if self.percpu else self.value_size

    @property
    def buf_size(self) -> int:
        """Bytes one element's value occupies in a user buffer."""
        return self.stride * self.slots

    def encode(self, value: ValueIn) -> bytes:
        """User-buffer bytes for one element's ``value``.

        Per-CPU maps take a sequence of one value per possible CPU; the pad
        up to the 8-byte stride is zero (the kernel ignores it on update).
        """
        if not self.percpu:
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError("value must be bytes-like for a non-per-CPU map")
            raw = bytes(value)
            if len(raw) != self.value_size:
                raise ValueError(f"value is {len(raw)} bytes, map wants {self.value_size}")
            return raw
        if isinstance(value, (bytes, bytearray, memoryview, str)):
            raise TypeError("per-CPU maps take a sequence of per-CPU values")
        if len(value) != self.slots:
            raise ValueError(f"{len(value)} per-CPU values given, {self.slots} possible CPUs")
        parts: list[bytes] = []
        pad = bytes(self.stride - self.value_size)
        for v in value:
            raw = bytes(v)
            if len(raw) != self.value_size:
                raise ValueError(f"per-CPU value is {len(raw)} bytes, map wants {self.value_size}")
            parts.append(raw + pad)
        return b"".join(parts)

    def decode(self, raw: bytes) -> Value:
        """One element's value from ``buf_size`` user-buffer bytes."""
        if not self.percpu:
            return raw
        s, n = self.stride, self.value_size
        return [raw[i * s : i * s + n] for i in range(self.slots)]
