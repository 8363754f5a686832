"""AMQP header values: which ones pika can send back as they came, and their size on the wire.

Headers of a delivery are copied onto its retry and dead-letter copies, and a copy that cannot be
encoded, or whose header frame is larger than the connection's `frame_max`, would fail or make
the broker close the whole connection. Everything a copy carries is measured here first.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import pika
import pika.data

# The copy's own properties and headers take at most this share of the negotiated frame_max.
FRAME_SHARE = 0.5


def install_faithful_float_decoding() -> None:
    """Decode AMQP float and double header values as Python floats.

    pika turns them into ints: 1.57 arrives as 1, 1e30 as a 31-digit int that overflows every
    64-bit field it reaches, and NaN fails to decode at all. Java, Go and Node clients send
    doubles. As floats they are never mistaken for a count, and since pika cannot encode floats,
    copies drop them instead of carrying a changed value. Idempotent; pika 1.x keeps
    `decode_value` a module function that `decode_table` looks up at each call.
    """
    original = pika.data.decode_value
    if getattr(original, "faithful_floats", False):
        return

    def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
        kind = encoded[offset:offset + 1]
        if kind == b"d":
            return struct.unpack_from(">d", encoded, offset + 1)[0], offset + 9
        if kind == b"f":
            return struct.unpack_from(">f", encoded, offset + 1)[0], offset + 5
        return original(encoded, offset)

    decode_value.faithful_floats = True  # type: ignore[attr-defined]
    pika.data.decode_value = decode_value


def encoded_size(value: Any) -> int | None:
    """Bytes `value` takes in a header table, or None if pika cannot send it back as it came."""
    if _holds_float(value):
        return None
    try:
        return pika.data.encode_value([], value)
    except Exception:  # struct.error, unsupported types, keys too long, bad unicode...
        return None


def _holds_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, Mapping):
        return any(_holds_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_float(v) for v in value)
    return False


def fit_headers(headers: Mapping[str, Any], budget: int) -> tuple[dict[str, Any], list[str]]:
    """The headers that can be sent as they are, within `budget` bytes; and the names dropped.

    Values pika cannot encode faithfully go first; then the largest, until the rest fits.
    """
    sizes: dict[str, int] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        size = encoded_size(value)
        if size is None:
            dropped.append(name)
        else:
            sizes[name] = 1 + len(name.encode("utf-8", "replace")) + size
    total = sum(sizes.values())
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= budget:
            break
        total -= sizes.pop(name)
        dropped.append(name)
    return {name: value for name, value in headers.items() if name in sizes}, dropped


def header_frame_size(properties: pika.BasicProperties) -> int:
    """Bytes of the content-header frame these properties make; raises if they cannot be encoded
    (before anything is sent, so the channel stays usable)."""
    return sum(len(piece) for piece in properties.encode()) + 14  # + class, weight, body size


def negotiated_frame_max(connection: pika.BlockingConnection) -> int:
    """The frame_max agreed with the broker at connection time (pika keeps it in the params
    of the underlying connection); the AMQP minimum if it cannot be read."""
    impl = getattr(connection, "_impl", None)
    params = getattr(impl, "params", None)
    return int(getattr(params, "frame_max", 4096) or 4096)
