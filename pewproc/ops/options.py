"""Settings as click options: each command declares the groups of settings it uses.

Each setting of those groups is an option named after its field (`--worker-pool-size`) and read
from its environment variable (`WORKER_POOL_SIZE`) when the option is not given; both come from
`pewproc.settings`, so the two cannot drift. Options and variables go through the same
conversion and checks there, so a bad value reads the same whichever way it came: one line
naming the variable and the option, exit status 2.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import click

from pewproc.settings import GROUPS, SettingError, Settings, convert, settings_fields

ALL_GROUPS = GROUPS
_ALIASES = {"worker_pool_size": ["--pool-size"], "prefetch_count": ["--prefetch"]}


class BadSetting(click.ClickException):
    """Printed as one `Error: ...` line; exit status 2, like click's own usage errors."""

    exit_code = 2


class _SettingText(click.ParamType):
    """Keeps the text as given: `pewproc.settings` converts and checks it, like the variable's.

    Only shapes --help: choices as [a|b], durations as SECONDS, sizes as BYTES.
    """

    def __init__(self, f: dataclasses.Field[Any]) -> None:
        meta = f.metadata
        if meta["choices"]:
            self.name = "[" + "|".join(meta["choices"]) + "]"
        elif meta["unit"]:
            self.name = meta["unit"].upper()
        else:
            self.name = {"int": "INTEGER", "float": "NUMBER"}.get(str(f.type), "TEXT")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        return value


def settings_options(*groups: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one option per setting of `groups`; the command receives a ready `settings`."""
    unknown = set(groups) - set(GROUPS)
    assert not unknown, f"unknown setting groups {unknown}"
    fields = [f for f in settings_fields() if f.metadata["group"] in groups]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(fields):
            command = click.option(
                f"--{f.name.replace('_', '-')}", *_ALIASES.get(f.name, []), f.name,
                type=_SettingText(f), default=None, help=_help(f),
            )(command)

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            try:
                overrides = {f.name: convert(f, raw) for f in fields
                             if (raw := kwargs.pop(f.name)) is not None}
                settings = Settings.from_env(groups=groups, **overrides)
                return command(settings=settings, **kwargs)
            except SettingError as exc:
                raise BadSetting(str(exc)) from None

        return wrapper

    return decorate


def _help(f: dataclasses.Field[Any]) -> str:
    meta = f.metadata
    if meta["secret"]:
        default = "(hidden)"
    elif f.default == "":
        default = "none"
    else:
        default = f"{f.default!r}" + (f" {meta['unit']}" if meta["unit"] else "")
    return f"{meta['help']} [env: {meta['env']}; default: {default}]"
