"""The README's configuration table is the settings' own description: it cannot drift."""

from __future__ import annotations

from pathlib import Path

from pewproc.settings import settings_fields

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- settings-table -->", "<!-- /settings-table -->"


def settings_table() -> str:
    lines = ["| Variable | Option | Default | Meaning |", "|---|---|---|---|"]
    for f in settings_fields():
        default = "(empty)" if f.default == "" else f.default
        option = f"--{f.name.replace('_', '-')}"
        lines.append(f"| `{f.metadata['env']}` | `{option}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(lines)


def test_the_readme_configuration_table_lists_every_setting_as_it_is() -> None:
    text = README.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert table == settings_table(), (
        "README's settings table is stale; regenerate it with "
        "`python -c 'from tests.test_docs import settings_table; print(settings_table())'`"
    )


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```sh\n{ci}\n```" in README.read_text()
