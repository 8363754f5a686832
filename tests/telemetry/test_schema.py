"""The DDL and the docs say exactly what the Table specs say, column for column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pewproc.telemetry.extract import output_tables
from pewproc.telemetry.model import Table

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "pewproc" / "storage" / "migrations"
_CREATE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\);", re.S)
_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+) ([^;]+);")


def ddl() -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, type + constraints)] from every migration, in order."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for sql in sorted(MIGRATIONS.glob("*.sql")):
        text = sql.read_text()
        for name, body in _CREATE.findall(text):
            tables[name] = [
                (parts[0], " ".join(parts[1:]))
                for parts in (line.strip().rstrip(",").split() for line in body.splitlines())
                if parts
            ]
        for name, column, column_type in _ADD_COLUMN.findall(text):
            tables[name].append((column, column_type.strip()))
    return tables


@pytest.mark.parametrize("spec", output_tables(), ids=lambda t: t.name)
def test_migration_matches_the_table_spec(spec: Table) -> None:
    columns = ddl()[spec.name]
    assert [c for c, _ in columns] == list(spec.column_names)
    assert columns[0][1] == "text NOT NULL"
    assert [t for _, t in columns[1:]] == list(spec.pg_types[1:])
    indexes = "".join(p.read_text() for p in MIGRATIONS.glob("*.sql"))
    assert f"CREATE INDEX {spec.name}_match_id ON {spec.name} (match_id);" in indexes


def test_new_tables_live_in_0002_only() -> None:
    new = set(_CREATE.findall((MIGRATIONS / "0002_telemetry_tables.sql").read_text()))
    assert {name for name, _ in new} == {t.name for t in output_tables()} - {"kills", "landings"}


@pytest.mark.parametrize("spec", output_tables(), ids=lambda t: t.name)
def test_docs_describe_every_column(spec: Table) -> None:
    doc = (ROOT / "docs" / "schema.md").read_text()
    section = doc.split(f"### `{spec.name}`", 1)
    assert len(section) == 2, f"docs/schema.md has no section for {spec.name}"
    body = section[1].split("\n### ", 1)[0]
    missing = [c for c in spec.column_names if f"`{c}`" not in body]
    assert not missing, f"{spec.name}: undocumented columns {missing}"
