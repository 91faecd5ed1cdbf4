"""What a whole raw file must be, checked from its first bytes without Spark.

One definition of each whole-file check, read by two callers: the job, before it reads
anything (``sales_etl.inputs``), and the pipeline's upload, before it puts anything into
the raw bucket (``pipeline.storage``), so a bad file stops at the door and never reaches
raw, the crawler or the job. Pure standard library: the pipeline imports it without
Spark, and Glue ships it in the job's zip.
"""

from __future__ import annotations

import csv
import io
import json
import re

# The raw sales CSV: its header, in this order (any case; surrounding spaces and a BOM
# are allowed).
SALES_COLUMNS = (
    "transaction_id",
    "date",
    "customer_id",
    "product",
    "quantity",
    "unit_price",
    "region",
    "total_amount",
)

UTF8_BOM = b"\xef\xbb\xbf"

# How much of a file the checks look at: the sales header, a customers file's start.
SALES_HEAD_BYTES = 65536
CUSTOMERS_HEAD_BYTES = 4096

_BLANK = b" \t\r\n"


class FatalInputError(Exception):
    """Input that cannot be processed at all; nothing has been written."""


def _without_bom(head: bytes) -> bytes:
    return head[len(UTF8_BOM) :] if head.startswith(UTF8_BOM) else head


def is_blank(head: bytes) -> bool:
    """True for a file of 0 bytes, or of only whitespace (and a BOM)."""
    return not _without_bom(head).strip(_BLANK)


def _first_line(head: bytes) -> bytes:
    return re.split(rb"\r\n|\n|\r", _without_bom(head), maxsplit=1)[0]


def _looks_like_json(head: bytes) -> bool:
    return _without_bom(head).lstrip(_BLANK)[:1] in (b"{", b"[")


def _is_sales_header(head: bytes) -> bool:
    try:
        text = _first_line(head).decode("utf-8")
    except UnicodeDecodeError:
        return False
    names = [n.strip().lower() for n in next(csv.reader(io.StringIO(text)), [])]
    return names == list(SALES_COLUMNS)


def check_sales_header(head: bytes, path: str) -> str:
    """Return the header line (without a BOM) if ``head`` starts with the sales header.

    Raises FatalInputError otherwise, saying what the file looks like instead.
    """
    first = _first_line(head)
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise FatalInputError(f"header of {path} is not UTF-8 text") from None
    if _looks_like_json(head):
        raise FatalInputError(
            f"{path} is JSON, not a sales CSV: customer records go to the customers input"
        )
    if not _is_sales_header(head):
        raise FatalInputError(
            f"header mismatch in {path}: expected {','.join(SALES_COLUMNS)}; got {text.strip()[:200]}"
        )
    return text


def check_customers_head(head: bytes, path: str) -> None:
    """Raise FatalInputError unless ``head`` starts like NDJSON or a JSON array.

    A file that starts with anything else holds no record the job could read (every
    line would be quarantined as invalid_json); the sales CSV is named as such.
    """
    if _looks_like_json(head):
        return
    if _is_sales_header(head):
        raise FatalInputError(f"{path} is the sales CSV, not customers: it goes to the sales input")
    first = _first_line(head).decode("utf-8", errors="replace").strip()[:80]
    raise FatalInputError(
        f"{path} is not JSON: customers are NDJSON (one object per line) or one JSON "
        f"array of objects; it starts with {first!r}"
    )


def json_layout(head: bytes) -> str:
    """Return ``json_array`` if the file starts with ``[`` (after BOM/whitespace), else ``ndjson``."""
    return "json_array" if _without_bom(head).lstrip(_BLANK)[:1] == b"[" else "ndjson"


def array_to_ndjson(data: bytes, path: str) -> bytes:
    """The elements of a JSON array file, one per line (NDJSON), in order.

    The same records the job reads from the array (one per element), in the form every
    reader takes: the Glue crawler and Athena read NDJSON, not one array. Raises
    FatalInputError when the file is not one JSON array.
    """
    try:
        elements = json.loads(_without_bom(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FatalInputError(f"{path} starts as a JSON array but does not parse: {exc}") from None
    if not isinstance(elements, list):
        raise FatalInputError(f"{path} is not one JSON array")
    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in elements]
    return "".join(line + "\n" for line in lines).encode("utf-8")
