"""The general path's events: every key of every object, read the way typed events are read.

Collectors read attributes (`event.character.accountId`), which msgspec's Structs serve at C
speed. A file that does not fit the typed shapes is parsed by `orjson.loads` into plain dicts;
`Fields` lets the same collectors read those: an attribute is the key's value, a missing key reads
as None (as it does on a Struct, and as `dict.get` read it), and a nested object is wrapped as it
is read. Everything else is the dict it was: an empty object is false, `isinstance(x, dict)`
holds, and a value of an odd type is returned as it is, so the collectors meet it exactly as
before and fail or cope the same way.
"""

from __future__ import annotations

from typing import Any


class Fields(dict[str, Any]):
    __slots__ = ()

    def __getattr__(self, key: str) -> Any:
        if key[:2] == "__":  # copy, pickle and friends ask for protocols, never for keys
            raise AttributeError(key)
        value = self.get(key)
        wrapped = as_fields(value)
        if wrapped is not value:
            self[key] = wrapped  # once: the next read finds it wrapped
        return wrapped


def as_fields(value: Any) -> Any:
    """`value` with every dict in it, and in a list of it, readable by attribute; an object that
    already is (a Struct, or a dict wrapped before) is returned as it is."""
    cls = value.__class__
    if cls is dict:
        return Fields(value)
    if cls is list and any(item.__class__ is dict for item in value):
        return [Fields(item) if item.__class__ is dict else item for item in value]
    return value


def general_events(events: list[dict[str, Any]]) -> list[Fields]:
    """Parsed events (dicts) as the collectors read them."""
    return [Fields(event) for event in events]
