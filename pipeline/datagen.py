"""Synthetic e-commerce data: sales transactions (CSV) and customers (NDJSON).

The sales generator is vectorised: each chunk of rows is drawn with numpy, formatted
with pyarrow compute kernels and streamed to the CSV writer, so memory stays bounded
and no Python code runs per row. The same seed (and the same flags) gives the same
bytes, because chunks are always drawn in the same order from one generator.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from sales_etl.raw_files import SALES_COLUMNS

log = logging.getLogger(__name__)

# (product, list price in cents, relative popularity)
PRODUCTS: tuple[tuple[str, int, float], ...] = (
    ("Laptop", 119_999, 4.0),
    ("Smartphone", 79_999, 7.0),
    ("Tablet", 44_999, 4.5),
    ("Monitor", 27_999, 4.0),
    ("Smartwatch", 24_999, 4.5),
    ("Headphones", 14_999, 8.0),
    ("Gaming Console", 49_999, 2.5),
    ("Camera", 64_999, 1.5),
    ("Printer", 18_999, 2.0),
    ("External SSD", 10_999, 5.0),
    ("Router", 8_999, 3.5),
    ("Bluetooth Speaker", 5_999, 6.0),
    ("Keyboard", 7_999, 6.5),
    ("Webcam", 6_499, 3.5),
    ("Mouse", 2_999, 9.0),
    ("USB-C Charger", 2_499, 9.5),
)
# (region, share of orders)
REGIONS: tuple[tuple[str, float], ...] = (
    ("North", 0.24),
    ("South", 0.21),
    ("East", 0.22),
    ("West", 0.25),
    ("Central", 0.08),
)
# Skewed basket size: most orders are a single unit.
QUANTITY_WEIGHTS = np.array([0.52, 0.22, 0.11, 0.06, 0.04, 0.025, 0.015, 0.01])
# Discounts off list price and how often each applies.
DISCOUNTS = np.array([0.00, 0.05, 0.10, 0.15, 0.20])
DISCOUNT_WEIGHTS = np.array([0.62, 0.14, 0.12, 0.07, 0.05])
# Order volume by weekday, Monday first: weekends are busier online.
WEEKDAY_FACTOR = np.array([0.92, 0.88, 0.90, 0.95, 1.08, 1.18, 1.09])

AGE_GROUPS = (
    ("18-25", 0.17),
    ("26-35", 0.29),
    ("36-45", 0.24),
    ("46-55", 0.16),
    ("56-65", 0.09),
    ("65+", 0.05),
)
MEMBERSHIP_TIERS = (("Bronze", 0.45), ("Silver", 0.30), ("Gold", 0.18), ("Platinum", 0.07))

# Kinds of bad rows --dirty-rate mixes in, in a fixed order (part of the byte-for-byte contract).
DIRTY_KINDS = (
    "missing_field",
    "non_positive_quantity",
    "invalid_date",
    "exact_duplicate",
    "conflicting_duplicate",
    "unknown_customer",
    "amount_mismatch",
)
_BAD_DATES = ("2025-13-01", "2025-02-30", "not-a-date", "31/12/2025", "20251105")
_BLANKABLE = ("date", "customer_id", "product", "quantity", "unit_price", "region")

CHUNK_ROWS = 500_000


def customer_id_width(customers: int) -> int:
    """Digits in a customer id, so ids sort as text and fit the id space."""
    return max(4, len(str(customers)))


def format_customer_ids(numbers: np.ndarray, width: int) -> pa.Array:
    """Return ``CUST0001``-style ids for 1-based customer numbers."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise("CUST", digits, "")


def _weights(pairs) -> tuple[list[str], np.ndarray]:
    names = [p[0] for p in pairs]
    w = np.array([p[-1] for p in pairs], dtype=float)
    return names, w / w.sum()


def _money(cents: np.ndarray) -> pa.Array:
    """Format integer cents as ``123.45`` text without a Python loop."""
    cents_arr = pa.array(cents)
    negative = pc.less(cents_arr, 0)
    absolute = pc.abs(cents_arr)
    dollars = pc.cast(pc.divide(absolute, 100), pa.string())
    frac = pc.utf8_lpad(
        pc.cast(pc.subtract(absolute, pc.multiply(pc.divide(absolute, 100), 100)), pa.string()),
        width=2,
        padding="0",
    )
    text = pc.binary_join_element_wise(dollars, frac, ".")
    return pc.if_else(negative, pc.binary_join_element_wise("-", text, ""), text)


@dataclass(frozen=True)
class SalesSpec:
    """Parameters of one sales file."""

    rows: int = 10_000
    customers: int = 500
    days: int = 90
    start_date: dt.date = dt.date(2025, 9, 15)
    seed: int = 42
    dirty_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError("rows must be >= 0")
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if not 0.0 <= self.dirty_rate <= 0.5:
            raise ValueError("dirty rate must be between 0 and 0.5")


def day_weights(start: dt.date, days: int) -> np.ndarray:
    """Relative order volume per day: weekday pattern, slow seasonal wave, holiday peak."""
    dates = np.arange(np.datetime64(start), np.datetime64(start) + days, dtype="datetime64[D]")
    weekday = (dates.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday
    doy = (dates - dates.astype("datetime64[Y]")).astype(int)
    seasonal = 1.0 + 0.15 * np.sin(2 * np.pi * (doy - 120) / 365.25)
    month_day = dates.astype("datetime64[D]") - dates.astype("datetime64[M]")
    month = dates.astype("datetime64[M]").astype(int) % 12 + 1
    # Late-November to December gift season lifts volume.
    holiday = np.where((month == 12) | ((month == 11) & (month_day.astype(int) >= 20)), 1.35, 1.0)
    w = WEEKDAY_FACTOR[weekday] * seasonal * holiday
    return w / w.sum()


def _customer_weights(customers: int, rng: np.random.Generator) -> np.ndarray:
    # A few loyal customers buy much more often than most (Zipf-like), in random id order.
    w = 1.0 / np.arange(1, customers + 1) ** 0.7
    rng.shuffle(w)
    return w / w.sum()


def iter_sales_chunks(
    spec: SalesSpec, chunk_rows: int = CHUNK_ROWS
) -> Iterator[tuple[pa.Table, Counter]]:
    """Yield (table of formatted string columns, dirty-kind counts) per chunk, in file order."""
    rng = np.random.default_rng(spec.seed)
    product_names = np.array([p[0] for p in PRODUCTS], dtype=object)
    list_prices = np.array([p[1] for p in PRODUCTS], dtype=np.int64)
    product_p = np.array([p[2] for p in PRODUCTS]) / sum(p[2] for p in PRODUCTS)
    region_names, region_p = _weights(REGIONS)
    customer_p = _customer_weights(spec.customers, rng)
    width = customer_id_width(spec.customers)
    txn_width = max(8, len(str(spec.rows)))
    # Rows per day drawn once for the whole file: dates are ordered and chunk-independent.
    per_day = (
        rng.multinomial(spec.rows, day_weights(spec.start_date, spec.days))
        if spec.rows
        else np.zeros(spec.days, dtype=np.int64)
    )
    day_end = np.cumsum(per_day)
    start_day = np.datetime64(spec.start_date, "D")
    product_dict = pa.array(product_names.tolist(), pa.string())
    region_dict = pa.array(region_names, pa.string())

    for lo in range(0, spec.rows, chunk_rows):
        n = min(chunk_rows, spec.rows - lo)
        row = np.arange(lo, lo + n, dtype=np.int64)
        day = np.searchsorted(day_end, row, side="right")
        product = rng.choice(len(PRODUCTS), size=n, p=product_p)
        quantity = rng.choice(len(QUANTITY_WEIGHTS), size=n, p=QUANTITY_WEIGHTS) + 1
        discount = DISCOUNTS[rng.choice(len(DISCOUNTS), size=n, p=DISCOUNT_WEIGHTS)]
        unit_cents = np.round(list_prices[product] * (1.0 - discount)).astype(np.int64)
        total_cents = unit_cents * quantity
        customer = rng.choice(spec.customers, size=n, p=customer_p) + 1
        region = rng.choice(len(region_names), size=n, p=region_p)

        cols = {
            "transaction_id": pc.binary_join_element_wise(
                "TXN",
                pc.utf8_lpad(pc.cast(pa.array(row + 1), pa.string()), width=txn_width, padding="0"),
                "",
            ),
            "date": pc.cast(pa.array(start_day + day), pa.string()),
            "customer_id": format_customer_ids(customer, width),
            "product": pc.take(product_dict, pa.array(product)),
            "quantity": pc.cast(pa.array(quantity), pa.string()),
            "unit_price": _money(unit_cents),
            "region": pc.take(region_dict, pa.array(region)),
            "total_amount": _money(total_cents),
        }
        counts: Counter = Counter()
        if spec.dirty_rate > 0:
            cols, counts = _make_dirty(cols, n, spec, rng, quantity, unit_cents, total_cents, width)
        yield pa.table(cols), counts


def _make_dirty(cols, n, spec, rng, quantity, unit_cents, total_cents, width):
    """Turn a fraction of rows into realistic bad rows; returns new columns and counts."""
    # Dirty rows sit at odd positions only, so the row before each one is clean and
    # duplicates copy a clean row. Probability 2*rate on half the rows keeps the rate.
    odd = np.arange(1, n, 2)
    dirty_rows = odd[rng.random(odd.size) < 2 * spec.dirty_rate]
    kinds = rng.integers(0, len(DIRTY_KINDS), size=dirty_rows.size)
    counts = Counter({k: int((kinds == i).sum()) for i, k in enumerate(DIRTY_KINDS)})

    def rows_of(kind: str) -> np.ndarray:
        return dirty_rows[kinds == DIRTY_KINDS.index(kind)]

    def replace(name: str, idx: np.ndarray, values) -> None:
        if idx.size == 0:
            return
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        if not isinstance(values, pa.Array):
            values = pa.array(values, pa.string())
        cols[name] = pc.replace_with_mask(cols[name], pa.array(mask), values)

    # Missing fields: one required field left empty.
    missing = rows_of("missing_field")
    which = rng.integers(0, len(_BLANKABLE), size=missing.size)
    for i, name in enumerate(_BLANKABLE):
        idx = missing[which == i]
        replace(name, idx, [""] * idx.size)

    # Quantity zero or negative (totals follow, so only the quantity rule fires).
    bad_q = rows_of("non_positive_quantity")
    q = -rng.integers(0, 3, size=bad_q.size)
    replace("quantity", bad_q, q.astype(str).tolist())
    replace("total_amount", bad_q, _money(unit_cents[bad_q] * q))

    bad_date = rows_of("invalid_date")
    replace(
        "date",
        bad_date,
        [_BAD_DATES[i] for i in rng.integers(0, len(_BAD_DATES), size=bad_date.size)],
    )

    unknown = rows_of("unknown_customer")
    ids = format_customer_ids(
        spec.customers + 1 + rng.integers(0, spec.customers, size=unknown.size), width
    )
    replace("customer_id", unknown, ids)

    mismatch = rows_of("amount_mismatch")
    # Beyond the rounding tolerance the job allows (half a cent per unit, plus half).
    off = rng.choice([-1, 1], size=mismatch.size) * np.maximum(
        rng.integers(2, 5000, size=mismatch.size), quantity[mismatch] + 1
    )
    replace("total_amount", mismatch, _money(np.maximum(total_cents[mismatch] + off, 1)))

    # Duplicates last: an exact duplicate repeats the previous (clean) row whole; a
    # conflicting duplicate reuses its transaction id with different content.
    take = np.arange(n)
    take[rows_of("exact_duplicate")] -= 1
    cols = {name: pc.take(col, pa.array(take)) for name, col in cols.items()}
    conflict = rows_of("conflicting_duplicate")
    txn_take = np.arange(n)
    txn_take[conflict] -= 1
    cols["transaction_id"] = pc.take(cols["transaction_id"], pa.array(txn_take))
    return cols, counts


def write_sales_csv(spec: SalesSpec, output: Path, progress: bool = False) -> Counter:
    """Write the sales CSV to ``output``; returns counts of dirty rows by kind."""
    from tqdm import tqdm

    output.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([(c, pa.string()) for c in SALES_COLUMNS])
    totals: Counter = Counter()
    tmp = output.with_name(output.name + ".tmp")
    # Values never contain a comma or quote, so nothing needs quoting; the header is
    # written by hand because pyarrow always quotes its own header.
    options = pacsv.WriteOptions(quoting_style="none", include_header=False)
    with tmp.open("wb") as sink:
        sink.write((",".join(SALES_COLUMNS) + "\n").encode())
    with (
        tqdm(
            total=spec.rows, unit="rows", unit_scale=True, disable=not progress, desc="sales"
        ) as bar,
        pa.OSFile(str(tmp), "ab") as sink,
        pacsv.CSVWriter(sink, schema, write_options=options) as writer,
    ):
        for table, counts in iter_sales_chunks(spec):
            writer.write_table(table)
            totals.update(counts)
            bar.update(table.num_rows)
    tmp.replace(output)  # never leave a half-written file under the real name
    return totals


def generate_customers(customers: int, seed: int, start_date: dt.date) -> list[dict[str, str]]:
    """Return customer records with ids ``CUST0001``.. in the sales generator's id space."""
    from faker import Faker

    rng = np.random.default_rng(seed)
    fake = Faker()
    fake.seed_instance(seed)
    ages, age_p = _weights(AGE_GROUPS)
    tiers, tier_p = _weights(MEMBERSHIP_TIERS)
    age = rng.choice(len(ages), size=customers, p=age_p)
    tier = rng.choice(len(tiers), size=customers, p=tier_p)
    ids = format_customer_ids(np.arange(1, customers + 1), customer_id_width(customers)).to_pylist()
    # Members sign up over the three years before the sales window; Faker keeps the
    # dates realistic (no February 30th) and reproducible under the seed.
    since = start_date - dt.timedelta(days=3 * 365)
    return [
        {
            "customer_id": ids[i],
            "age_group": ages[age[i]],
            "membership_tier": tiers[tier[i]],
            "signup_date": fake.date_between(
                start_date=since, end_date=start_date - dt.timedelta(days=1)
            ).isoformat(),
        }
        for i in range(customers)
    ]


def write_customers_ndjson(records: list[dict[str, str]], output: Path) -> None:
    """Write one JSON object per line (NDJSON), never a JSON array."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for record in records:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    tmp.replace(output)
