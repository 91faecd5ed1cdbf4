"""Expected ETL figures computed from the raw input alone, independently of the job's code.

Used by tests/test_glue_etl_parallel.py (the generators' dirty rows, read by the job).
"""

from __future__ import annotations

from pathlib import Path


def expected_from_raw(sales_csv: Path, known_customers: set[str]) -> dict[str, int]:
    """Classify the generator's dirty rows with pandas, independently of the job."""
    import pandas as pd

    df = pd.read_csv(sales_csv, dtype=str, keep_default_na=False)
    empty = (df == "").any(axis=1)
    qty = pd.to_numeric(df["quantity"], errors="coerce")
    date_ok = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce").notna()
    cents = lambda col: (pd.to_numeric(df[col], errors="coerce") * 100).round()  # noqa: E731
    # unit_price is rounded to the cent: half a cent per unit, plus half for the total.
    mismatch = (cents("total_amount") - qty * cents("unit_price")).abs() > 0.5 * qty + 0.5
    invalid_date = ~empty & ~date_ok
    non_positive = ~empty & date_ok & (qty <= 0)
    amount = ~empty & date_ok & (qty > 0) & mismatch
    valid = df[~(empty | invalid_date | non_positive | amount)]
    exact = valid.duplicated()
    distinct = valid[~exact]
    conflicting = distinct["transaction_id"].duplicated(keep=False)
    kept = distinct[~conflicting]
    return {
        "missing_field": int(empty.sum()),
        "invalid_date": int(invalid_date.sum()),
        "non_positive_quantity": int(non_positive.sum()),
        "amount_mismatch": int(amount.sum()),
        "conflicting_duplicate": int(conflicting.sum()),
        "duplicates_dropped": int(exact.sum()),
        "enriched": len(kept),
        "unknown_customers": int((~kept["customer_id"].isin(known_customers)).sum()),
    }
