"""Both inputs checked and listed before anything is written: files exist, are not
empty, the sales files have the header, the customer files are NDJSON or JSON arrays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from sales_etl.arguments import JobArgs
from sales_etl.files import HadoopFiles, InputFile, LocalFiles, filesystem_for
from sales_etl.raw_files import (
    CUSTOMERS_HEAD_BYTES,
    SALES_HEAD_BYTES,
    FatalInputError,
    check_customers_head,
    check_sales_header,
    is_blank,
    json_layout,
)

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
        check_sales_header(sales_fs.head(f.path, SALES_HEAD_BYTES), f.path)
        for f in sales
        if f not in known
    }
    cust_fs = filesystem_for(args.customers_path, spark)
    customers = _nonempty_files(cust_fs, args.customers_path, "customers")
    ndjson, arrays = [], []
    for f in customers:
        if f in known:
            (arrays if f in known_arrays else ndjson).append(f)
            continue
        head = cust_fs.head(f.path, CUSTOMERS_HEAD_BYTES)
        if is_blank(head):
            log.warning("customers file %s holds only whitespace; skipped", f.path)
            continue
        check_customers_head(head, f.path)
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
