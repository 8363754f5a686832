"""`Fields`: a general-path JSON object, read by attribute the way a typed event is."""

from __future__ import annotations

import copy
import pickle

from pewproc.telemetry.general import Fields, as_fields, general_events


def test_keys_read_as_attributes_and_missing_ones_as_none() -> None:
    event = Fields({"_T": "LogHeal", "damage": 0, "name": None})
    assert (event._T, event.damage, event.name, event.missing) == ("LogHeal", 0, None, None)


def test_objects_below_are_wrapped_as_they_are_read_and_once() -> None:
    event = Fields({"character": {"location": {"x": 1}}, "characters": [{"a": 1}, 2, None]})
    assert event.character.location.x == 1 and event.character.location.y is None
    assert event.character is event.character  # stored wrapped: the next read finds it
    entries = event.characters
    assert isinstance(entries[0], Fields) and entries[0].a == 1 and entries[1:] == [2, None]


def test_it_stays_the_dict_it_was() -> None:
    raw = {"common": {}, "zone": "Pochinki"}
    event = Fields(raw)
    assert event == raw and isinstance(event, dict)
    assert not event.common  # an empty object is false, as on the general path before
    assert event.zone == "Pochinki"  # odd values come as they are
    assert not Fields() and Fields().anything is None


def test_protocols_are_not_keys() -> None:
    event = Fields({"character": {"accountId": "a"}})
    assert not hasattr(event, "__fspath__")  # no protocol is claimed that it does not have
    assert copy.deepcopy(event) == event
    assert pickle.loads(pickle.dumps(event)) == event


def test_as_fields_leaves_what_needs_no_wrapping() -> None:
    wrapped = Fields({"a": 1})
    assert as_fields(wrapped) is wrapped
    plain = [1, "x"]
    assert as_fields(plain) is plain and as_fields(None) is None
    assert [type(e) for e in general_events([{"_T": "A"}, {}])] == [Fields, Fields]
