"""Read the named blocks of ``athena_queries.sql`` and fill their placeholders.

A block starts with ``-- name: <snake_case>``; the comment lines right after it describe
the block, and the rest is one statement. ``render`` fills only the placeholders it is
given, so Athena's own ``${year}`` in ``storage.location.template`` stays as written.

The error helpers at the end put a bad statement in the user's terms: ``where`` names a
line and column of the statement as written, ``syntax_error`` says what is wrong with a
statement sqlglot cannot parse (a misspelled keyword, a quote left open, ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.dialects.dialect import Dialect

from pipeline.config import QUERIES_FILE as QUERIES_PATH

_NAME_RE = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_SNAKE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DDL_RE = re.compile(r"^\s*(create|drop|alter|msck)\b", re.IGNORECASE)
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")  # sqlglot underlines the bad token


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


def analytic_names(path: Path | None = None) -> list[str]:
    """Names of the analytic (non-DDL) blocks, in file order."""
    return [name for name, sql in load_queries(path).items() if not is_ddl(sql)]


def render(sql: str, params: dict[str, str]) -> str:
    """Fill ``${name}`` for each name in ``params``; leave other ``${...}`` untouched."""
    return _PLACEHOLDER_RE.sub(lambda m: str(params.get(m.group(1), m.group(0))), sql)


# --- errors in the user's terms -------------------------------------------------------

# Words a statement is built of: an unknown word one typo away from one of these is
# taken for a misspelled keyword when a statement does not parse.
KEYWORDS = (
    "SELECT FROM WHERE GROUP ORDER HAVING LIMIT OFFSET JOIN LEFT RIGHT INNER OUTER FULL "
    "CROSS USING UNION INTERSECT EXCEPT WITH DISTINCT BETWEEN LIKE CASE WHEN THEN ELSE "
    "CAST OVER PARTITION VALUES"
).split()
_STATEMENT_STARTS = "SELECT, WITH, VALUES, SHOW, DESCRIBE or EXPLAIN"
_OPERATORS = {"Add", "Sub", "Mul", "Div", "Mod", "DPipe"}
_CLAUSE_NEEDS = {
    "Where": "WHERE needs a condition",
    "Having": "HAVING needs a condition",
    "Limit": "LIMIT needs a number",
    "Offset": "OFFSET needs a number",
    "Group": "GROUP BY needs at least one expression",
    "Order": "ORDER BY needs at least one expression",
}
_MISSING_RE = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")
_QUOTES = {"'": "string", '"': "quoted name", "`": "quoted name"}


def where(sql: str, offset: int) -> str:
    """``line L, column C`` (both from 1) of a character offset into ``sql``."""
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def tokens(sql: str, dialect: str = "athena") -> list[Any]:
    """The dialect's tokens of ``sql`` (raises sqlglot's TokenError)."""
    return Dialect.get_or_raise(dialect).tokenize(sql)


def find_token(sql: str, text: str, occurrence: int = 1) -> int | None:
    """Offset of the ``occurrence``-th token spelled ``text`` (any case), or None."""
    seen = 0
    try:
        found = tokens(sql)
    except sqlglot.errors.SqlglotError:
        return None
    for token in found:
        if token.text.lower() == text.lower():
            seen += 1
            if seen == occurrence:
                return token.start
    return None


def _typo_distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbouring letters as one edit."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[len(b)]


def misspelled_keyword(word: str) -> str | None:
    """The keyword ``word`` is one typo away from (``form`` -> ``FROM``), or None."""
    upper = word.upper()
    if len(upper) < 3 or upper in KEYWORDS:
        return None
    close = [k for k in KEYWORDS if _typo_distance(upper, k) == 1]
    return close[0] if close else None


def _unclosed(sql: str) -> tuple[int, str] | None:
    """Offset and kind of a quote or ``/*`` comment that is never closed, or None."""
    i = 0
    while i < len(sql):
        char = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                return i, "comment /*"
            i = end + 2
            continue
        if char in _QUOTES:
            j = i + 1
            while True:
                j = sql.find(char, j)
                if j < 0:
                    return i, f"{_QUOTES[char]} {char}"
                if sql.startswith(char * 2, j):  # a doubled quote stands for itself
                    j += 2
                    continue
                break
            i = j + 1
            continue
        i += 1
    return None


def _error_offset(sql: str, detail: dict[str, Any]) -> int:
    """Offset of the token sqlglot's error ``detail`` points at (its ``col`` is the end)."""
    if not detail.get("line") or detail.get("col") is None:
        return len(sql)
    lines = sql.split("\n")
    line_start = sum(len(x) + 1 for x in lines[: detail["line"] - 1])
    return line_start + max(detail["col"] - len(detail.get("highlight") or ""), 0)


def _parses_further(sql: str, stop: int) -> bool:
    """True when ``sql`` parses, or fails only after offset ``stop``."""
    try:
        sqlglot.parse(sql, read="athena")
    except sqlglot.errors.ParseError as exc:
        return _error_offset(sql, (exc.errors or [{}])[0]) > stop
    except sqlglot.errors.SqlglotError:
        return False
    return True


def syntax_error(sql: str, exc: Exception) -> str:
    """One line for a statement that does not parse: where, and what went wrong.

    ``exc`` is sqlglot's error. Its own description names parser internals ("Required
    keyword: 'expression' missing for <class Mul>"), so the statement is looked at
    again: a quote left open, a first word that starts no statement, a word one typo
    away from a keyword (when putting the keyword there lets the statement parse, or
    parse further), else sqlglot's spot in plain words.
    """
    unclosed = _unclosed(sql)
    if unclosed:
        offset, kind = unclosed
        return f"{where(sql, offset)}: this {kind} is never closed"
    try:
        found = [t for t in tokens(sql) if t.token_type.name != "SEMICOLON"]
    except sqlglot.errors.SqlglotError:
        return f"cannot read the statement: {one_line(exc)}"
    if not found:
        return "the statement is empty"
    detail = (getattr(exc, "errors", None) or [{}])[0]
    highlight = detail.get("highlight") or ""
    stop = _error_offset(sql, detail)
    for token in found:
        if token.token_type.name == "VAR" and token.text.upper() in ("GROUP", "ORDER"):
            return f"{where(sql, token.start)}: {token.text.upper()} must be followed by BY"
        keyword = misspelled_keyword(token.text) if token.token_type.name == "VAR" else None
        if keyword:
            fixed = sql[: token.start] + keyword + sql[token.end + 1 :]
            if _parses_further(fixed, stop + len(keyword) - len(token.text)):
                return f'{where(sql, token.start)}: "{token.text}" is not a keyword; did you mean {keyword}?'
    first = found[0]
    if first.token_type.name in ("VAR", "IDENTIFIER", "STRING", "NUMBER"):
        return (
            f"{where(sql, first.start)}: a statement starts with {_STATEMENT_STARTS}, "
            f'not "{first.text}"'
        )
    if not detail:
        return f"cannot read the statement: {one_line(exc)}"
    at = f"{where(sql, stop)}: " if stop < len(sql) else ""
    at_end = stop >= found[-1].start
    description = detail.get("description", "")
    missing = _MISSING_RE.search(description)
    if description.startswith("Expecting "):
        wanted = description.removeprefix("Expecting ").strip()
        if at_end:
            return f'{at}expected "{wanted}" after "{highlight}", at the end of the statement'
        return f'{at}expected "{wanted}", found "{highlight}"'
    if missing and missing.group(2) in _CLAUSE_NEEDS:
        return f"{at}{_CLAUSE_NEEDS[missing.group(2)]}"
    if missing and missing.group(2) in _OPERATORS:
        if at_end:
            return f'{at}the statement ends in the middle of an expression (at "{highlight}")'
        return f'{at}an operator is missing a value before "{highlight}"'
    if missing:
        return f'{at}something is missing in {missing.group(2).upper()} near "{highlight}"'
    if at_end:
        return f'{at}the statement ends too early (after "{highlight}")'
    return f'{at}unexpected "{highlight}" here'


def one_line(message: object) -> str:
    """Collapse a (possibly multi-line, colour-marked) message into one line."""
    return " ".join(_ANSI_RE.sub("", str(message)).split())
