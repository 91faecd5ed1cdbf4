"""Read the named blocks of ``athena_queries.sql`` and fill their placeholders.

A block starts with ``-- name: <snake_case>``; the comment lines right after it describe
the block, and the rest is one statement. ``render`` fills only the placeholders it is
given, so Athena's own ``${year}`` in ``storage.location.template`` stays as written.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import QUERIES_FILE as QUERIES_PATH

_NAME_RE = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_SNAKE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DDL_RE = re.compile(r"^\s*(create|drop|alter|msck)\b", re.IGNORECASE)


def parse_blocks(text: str) -> dict[str, tuple[str, str]]:
    """Return ``{name: (description, statement)}`` in file order.

    Raises ValueError for a bad or repeated name, an empty block or a block with more
    than one statement.
    """
    matches = list(_NAME_RE.finditer(text))
    blocks: dict[str, tuple[str, str]] = {}
    for i, match in enumerate(matches):
        name = match.group(1)
        if not _SNAKE_RE.match(name):
            raise ValueError(f"query name {name!r} is not snake_case")
        if name in blocks:
            raise ValueError(f"query name {name!r} appears twice")
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        lines = text[match.end() : end].strip().splitlines()
        description = []
        while lines and lines[0].lstrip().startswith("--"):
            description.append(lines.pop(0).lstrip()[2:].strip())
        statement = "\n".join(lines).strip().rstrip(";").rstrip()
        if not statement:
            raise ValueError(f"query {name!r} has no statement")
        if ";" in _strip_strings(statement):
            raise ValueError(f"query {name!r} holds more than one statement")
        blocks[name] = (" ".join(description), statement)
    return blocks


def _strip_strings(sql: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def _read(path: Path | None) -> str:
    return Path(path or QUERIES_PATH).read_text()


def load_queries(path: Path | None = None) -> dict[str, str]:
    """Return every block's statement by name, in file order."""
    return {name: stmt for name, (_, stmt) in parse_blocks(_read(path)).items()}


def descriptions(path: Path | None = None) -> dict[str, str]:
    """Return the one-line description (the block's leading comment) by name."""
    return {name: desc for name, (desc, _) in parse_blocks(_read(path)).items()}


def is_ddl(sql: str) -> bool:
    """True for CREATE / DROP / ALTER / MSCK statements."""
    return bool(_DDL_RE.match(sql))


def ddl_names(path: Path | None = None) -> list[str]:
    """Names of the DDL blocks, in file order (the order to run them in)."""
    return [name for name, sql in load_queries(path).items() if is_ddl(sql)]


def analytic_names(path: Path | None = None) -> list[str]:
    """Names of the analytic (non-DDL) blocks, in file order."""
    return [name for name, sql in load_queries(path).items() if not is_ddl(sql)]


def render(sql: str, params: dict[str, str]) -> str:
    """Fill ``${name}`` for each name in ``params``; leave other ``${...}`` untouched."""
    return _PLACEHOLDER_RE.sub(lambda m: str(params.get(m.group(1), m.group(0))), sql)
