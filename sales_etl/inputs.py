"""Both inputs checked and listed before anything is written: files exist, are not
empty, the sales files have the header, the customer files are NDJSON or JSON arrays.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass

from pyspark.sql import SparkSession

from sales_etl.arguments import JobArgs
from sales_etl.contracts import SALES_COLUMNS, UTF8_BOM, FatalInputError
from sales_etl.files import HadoopFiles, InputFile, LocalFiles, filesystem_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputPlan:
    sales_files: list[InputFile]
    ndjson_files: list[InputFile]
    array_files: list[InputFile]
    # Each sales file's first line as stored, less a UTF-8 BOM (Hadoop's line reader
    # drops it): the header lines the parallel reader skips.
    sales_headers: tuple[str, ...] = ()

    @property
    def customer_files(self) -> list[InputFile]:
        return sorted(self.ndjson_files + self.array_files, key=lambda f: f.path)

    def only(self, sales: list[InputFile], customers: list[InputFile]) -> InputPlan:
        """The plan for some of its files."""
        return InputPlan(
            [f for f in self.sales_files if f in sales],
            [f for f in self.ndjson_files if f in customers],
            [f for f in self.array_files if f in customers],
            self.sales_headers,
        )

    def only_new(self, known: frozenset[InputFile]) -> InputPlan:
        """The plan without the files in ``known``."""
        return self.only(
            [f for f in self.sales_files if f not in known],
            [f for f in self.customer_files if f not in known],
        )

    @property
    def input_bytes(self) -> int:
        """Bytes of every input file, sales and customers."""
        return sum(f.size for f in (*self.sales_files, *self.customer_files))


def _nonempty_files(fs: LocalFiles | HadoopFiles, path: str, what: str) -> list[InputFile]:
    if not fs.exists(path):
        raise FatalInputError(f"{what} input not found: {path}")
    files = fs.list_files(path)
    if not files:
        raise FatalInputError(f"{what} input is empty: no files under {path}")
    nonempty = [f for f in files if f.size > 0]
    for f in files:
        if f.size == 0:
            log.warning("%s file %s is empty; skipped", what, f.path)
    if not nonempty:
        raise FatalInputError(f"{what} input is empty: every file under {path} has 0 bytes")
    return nonempty


def check_sales_header(head: bytes, path: str) -> str:
    """Return the header line (without a BOM) if ``head`` starts with the sales header.

    Raises FatalInputError otherwise.
    """
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    first = re.split(rb"\r\n|\n|\r", head, maxsplit=1)[0]
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise FatalInputError(f"header of {path} is not UTF-8 text") from None
    names = [n.strip().lower() for n in next(csv.reader(io.StringIO(text)), [])]
    if names != list(SALES_COLUMNS):
        raise FatalInputError(
            f"header mismatch in {path}: expected {','.join(SALES_COLUMNS)}; got {text.strip()[:200]}"
        )
    return text


def json_layout(head: bytes) -> str:
    """Return ``json_array`` if the file starts with ``[`` (after BOM/whitespace), else ``ndjson``."""
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM) :]
    return "json_array" if head.lstrip()[:1] == b"[" else "ndjson"


def plan_inputs(
    args: JobArgs,
    spark: SparkSession | None,
    known: frozenset[InputFile] = frozenset(),
    known_arrays: frozenset[InputFile] = frozenset(),
) -> InputPlan:
    """Check that both inputs exist, are not empty and look right; list their files.

    Files in ``known`` (processed by an earlier run, unchanged since) are listed but not
    opened: a run that reads nothing new reads no raw bytes. ``known_arrays``: those of
    them that are customer files in one JSON array, as the earlier run found.
    """
    sales_fs = filesystem_for(args.sales_path, spark)
    sales = _nonempty_files(sales_fs, args.sales_path, "sales")
    headers = {
        check_sales_header(sales_fs.head(f.path, 65536), f.path) for f in sales if f not in known
    }
    cust_fs = filesystem_for(args.customers_path, spark)
    customers = _nonempty_files(cust_fs, args.customers_path, "customers")
    ndjson, arrays = [], []
    for f in customers:
        if f in known:
            (arrays if f in known_arrays else ndjson).append(f)
            continue
        head = cust_fs.head(f.path, 4096)
        if not head.strip(b" \t\r\n" + UTF8_BOM):
            log.warning("customers file %s holds only whitespace; skipped", f.path)
            continue
        if json_layout(head) == "json_array":
            log.warning(
                "customers file %s is a JSON array, not NDJSON; accepted (one record per "
                "element), but write one object per line",
                f.path,
            )
            arrays.append(f)
        else:
            ndjson.append(f)
    if not ndjson and not arrays:
        raise FatalInputError(f"customers input is empty: {args.customers_path}")
    return InputPlan(
        sales_files=sales,
        ndjson_files=ndjson,
        array_files=arrays,
        sales_headers=tuple(sorted(headers)),
    )
