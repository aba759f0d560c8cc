"""The ClickHouse schema: numbered ``NNN_name.sql`` files applied in order, idempotently.

Each file holds ``CREATE … IF NOT EXISTS`` statements separated by ``;``. Applied files are
recorded in ``schema_migrations`` (version, name, checksum); a file already recorded is not run
again, and a recorded file whose text changed is an error (add a new file instead).
Engines are single-node ReplacingMergeTree; the cluster variants are in docs/adr/0003.

Must not import: ``csms.*`` (it is plain DDL over :class:`streams.store.Store`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from streams.store import Store

SCHEMA_DIR = Path(__file__).parent
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

PROJECTION_TABLES = (
    "events",
    "transaction_facts",
    "transaction_agg",
    "transaction_start_ids",
    "meter_values",
    "status_notifications",
    "station_boots",
    "station_sessions",
    "station_seen",
    "poison_events",
)
"""Every table the projector writes: what a rebuild creates fresh and swaps in."""

_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        text = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in text.split(";") if s.strip()]


def migrations() -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(SCHEMA_DIR.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise ValueError(f"schema file {path.name} is not named NNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate schema versions in {SCHEMA_DIR}")
    return found


async def apply(store: Store, database: str | None = None) -> list[int]:
    """Apply the files not yet recorded in ``database`` (default: the store's); returns the
    versions applied now."""
    db = database or store.database
    await store.command(f"CREATE DATABASE IF NOT EXISTS `{db}`")
    await store.command(_MIGRATIONS_DDL, database=db)
    rows = await store.query(
        f"SELECT version, checksum FROM `{db}`.schema_migrations FINAL ORDER BY version"
    )
    done = {int(r["version"]): str(r["checksum"]) for r in rows}
    applied: list[int] = []
    for migration in migrations():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise ValueError(
                    f"schema file {migration.version:03d}_{migration.name}.sql changed after it "
                    f"was applied to {db}: add a new numbered file instead"
                )
            continue
        for statement in migration.statements():
            await store.command(statement, database=db)
        await store.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            ["version", "name", "checksum"],
            database=db,
        )
        applied.append(migration.version)
    return applied
