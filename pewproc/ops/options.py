"""Every setting as a click option, for any pewproc command.

Each setting is an option named after its field (`--worker-pool-size`) and read from its
environment variable (`WORKER_POOL_SIZE`) when the option is not given; both come from
`pewproc.settings`, so the two cannot drift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from pewproc.settings import Settings, settings_fields

_ALIASES = {"worker_pool_size": ["--pool-size"], "prefetch_count": ["--prefetch"]}
_TYPES = {"int": int, "float": float}


def settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per setting; the command receives a ready `settings` argument."""
    names = []
    for f in reversed(settings_fields()):
        names.append(f.name)
        env = f.metadata["env"]
        default = "(hidden)" if f.metadata["secret"] else repr(f.default)
        command = click.option(
            f"--{f.name.replace('_', '-')}", *_ALIASES.get(f.name, []), f.name,
            type=_TYPES.get(str(f.type), str), default=None,
            help=f"{f.metadata['help']} [env: {env}; default: {default}]",
        )(command)

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        overrides = {name: kwargs.pop(name) for name in names}
        try:
            settings = Settings.from_env(**overrides)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return command(settings=settings, **kwargs)

    return wrapper
