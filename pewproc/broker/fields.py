"""AMQP header values: which ones pika can send back as they came, and their size on the wire.

Headers of a delivery are copied onto its retry and dead-letter copies, and a copy that cannot be
encoded, or whose header frame is larger than the connection's `frame_max`, would fail or make
the broker close the whole connection. Everything a copy carries is measured here first, and
values pika would change on the way back are kept as the bytes they came as.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pika
import pika.data

# The copy's own properties and headers take at most this share of the negotiated frame_max.
FRAME_SHARE = 0.5


# Kinds pika turns into Python values it cannot encode back the same: floats and doubles become
# ints (1.57 arrives as 1, 1e30 as a 31-digit int), unsigned 64-bit ints turn negative, small
# ints widen, decimals lose their scale, out-of-range timestamps fail to decode at all.
_RAW_SIZES = {b"b": 1, b"B": 1, b"U": 2, b"u": 2, b"s": 2, b"i": 4, b"f": 4, b"D": 5,
              b"L": 8, b"l": 8, b"d": 8, b"T": 8}
_MAX_DEPTH = 16  # nested tables and arrays deeper than this are kept raw, never recursed into
_depth = threading.local()


@dataclass(frozen=True)
class RawField:
    """A header value kept exactly as it came on the wire: its kind byte and payload.

    pika would change it (or fail) on the way back; as raw bytes it is carried faithfully onto
    copies, and nothing mistakes it for one of pewproc's own values (an attempt count, say).
    """

    encoded: bytes

    @property
    def kind(self) -> str:
        return chr(self.encoded[0])

    def __str__(self) -> str:
        return f"<AMQP {self.kind} {self.encoded[1:].hex()}>"


def install_faithful_field_codec() -> None:
    """Teach pika to keep header values it cannot round-trip as `RawField`s, and to send those
    back byte for byte; idempotent. pika 1.x keeps `decode_value` and `encode_value` module
    functions that `decode_table` and `encode_table` look up at each call."""
    decode, encode = pika.data.decode_value, pika.data.encode_value
    if getattr(decode, "faithful", False):
        return

    def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
        kind = encoded[offset:offset + 1]
        size = _RAW_SIZES.get(kind)
        if size is not None:
            end = offset + 1 + size
            return RawField(bytes(encoded[offset:end])), end
        if kind in (b"F", b"A"):
            depth = getattr(_depth, "value", 0)
            if depth >= _MAX_DEPTH:
                end = offset + 5 + struct.unpack_from(">I", encoded, offset + 1)[0]
                return RawField(bytes(encoded[offset:end])), end
            _depth.value = depth + 1
            try:
                return decode(encoded, offset)
            finally:
                _depth.value = depth
        value, end = decode(encoded, offset)
        if kind == b"S" and isinstance(value, bytes):  # not UTF-8: pika would send it back as x
            return RawField(bytes(encoded[offset:end])), end
        return value, end

    def encode_value(pieces: list[bytes], value: Any) -> int:
        if isinstance(value, RawField):
            pieces.append(value.encoded)
            return len(value.encoded)
        return encode(pieces, value)

    decode_value.faithful = True  # type: ignore[attr-defined]
    pika.data.decode_value = decode_value
    pika.data.encode_value = encode_value


def encoded_size(value: Any) -> int | None:
    """Bytes `value` takes in a header table, or None if it cannot be sent back as it came."""
    try:
        return pika.data.encode_value([], value)
    except Exception:  # struct.error, unsupported types (a float), keys too long, bad unicode...
        return None


def fit_headers(headers: Mapping[str, Any], budget: int) -> tuple[dict[str, Any], list[str]]:
    """The headers that can be sent as they are, within `budget` bytes; and the names dropped.

    Names that are not text and values that cannot be encoded go first; then the largest, until
    the rest fits.
    """
    sizes: dict[str, int] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        size = encoded_size(value)
        if not isinstance(name, str):  # a name that is not UTF-8 arrives as bytes
            dropped.append(repr(name))
        elif size is None:
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
