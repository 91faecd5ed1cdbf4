"""Generators: reproducible bytes, the contract's header, realistic domains, dirty rows on request.

Expected values are computed here from the written files with pandas, independently of
the generator's own arithmetic.
"""

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from pipeline.datagen import PRODUCTS, REGIONS, SalesSpec, write_sales_csv

ROOT = Path(__file__).resolve().parents[1]
HEADER = "transaction_id,date,customer_id,product,quantity,unit_price,region,total_amount"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def cents(text: str) -> int:
    return int(Decimal(text) * 100)


@pytest.fixture(scope="module")
def default_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    run_script("generate_sample_data.py", "--output", str(out / "sales.csv"))
    run_script("generate_customer_data.py", "--output", str(out / "customers.json"))
    return out / "sales.csv", out / "customers.json"


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_sales_csv(
            SalesSpec(rows=20_000, seed=seed, dirty_rate=0.05), tmp_path / f"{name}.csv"
        )
        run_script(
            "generate_customer_data.py",
            "--seed",
            str(seed),
            "--output",
            str(tmp_path / f"{name}.json"),
        )
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "c.json").read_bytes()


def test_defaults_write_10000_rows_under_the_seed_header(default_files):
    sales, _ = default_files
    lines = sales.read_text().splitlines()
    assert lines[0] == HEADER
    assert len(lines) == 1 + 10_000
    df = read_raw(sales)
    assert df["transaction_id"].is_unique
    assert df["transaction_id"].iloc[0] == "TXN00000001"
    assert (df != "").all().all()


def test_values_stay_in_their_domains(default_files):
    sales, _ = default_files
    df = read_raw(sales)
    dates = pd.to_datetime(df["date"], format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp("2025-09-15")
    assert dates.max() <= pd.Timestamp("2025-09-15") + pd.Timedelta(days=89)
    assert dates.dt.month.nunique() == 4  # mid-September to mid-December
    list_price = {name: price for name, price, _ in PRODUCTS}
    assert set(df["product"]) <= set(list_price)
    assert set(df["region"]) <= {r for r, _ in REGIONS}
    qty = df["quantity"].astype(int)
    assert qty.between(1, 8).all()
    unit = df["unit_price"].map(cents)
    listed = df["product"].map(list_price)
    # Discounts of up to 20% off list price, never a markup or a free item.
    assert (unit <= listed).all() and (unit >= listed * 0.8 - 1).all()


def test_total_amount_is_quantity_times_unit_price_to_the_cent(default_files):
    sales, _ = default_files
    df = read_raw(sales)
    assert df["total_amount"].str.fullmatch(r"\d+\.\d\d").all()
    expected = df["quantity"].astype(int) * df["unit_price"].map(cents)
    assert (df["total_amount"].map(cents) == expected).all()


def test_distribution_is_skewed_not_uniform(tmp_path):
    out = tmp_path / "big.csv"
    write_sales_csv(SalesSpec(rows=100_000, days=364, start_date=dt.date(2025, 1, 6)), out)
    df = read_raw(out)
    qty = df["quantity"].astype(int).value_counts(normalize=True)
    assert qty[1] > 0.45 and qty[1] > 2 * qty[2] > 2 * qty[4]
    per_day = pd.to_datetime(df["date"]).value_counts()
    weekday = per_day.groupby(per_day.index.dayofweek).mean()
    assert weekday[5] > 1.2 * weekday[1]  # Saturdays outsell Tuesdays
    month = pd.to_datetime(df["date"]).dt.month.value_counts()
    assert month[12] > 1.2 * month[2]  # the gift season shows
    top_product_share = df["product"].value_counts(normalize=True).iloc[0]
    assert top_product_share > 1.5 / len(PRODUCTS)


def test_sales_customer_ids_come_from_the_customer_file(default_files):
    sales, customers = default_files
    ids = {json.loads(line)["customer_id"] for line in customers.read_text().splitlines()}
    assert len(ids) == 500 and "CUST0001" in ids and "CUST0500" in ids
    used = set(read_raw(sales)["customer_id"])
    assert used <= ids
    assert len(used) > 400  # most customers buy something


def test_customers_are_ndjson_with_the_contract_keys(default_files):
    _, customers = default_files
    text = customers.read_text()
    assert not text.lstrip().startswith("[")
    records = [json.loads(line) for line in text.splitlines()]  # each line parses alone
    assert len(records) == 500
    assert all(
        list(r) == ["customer_id", "age_group", "membership_tier", "signup_date"] for r in records
    )
    assert {r["membership_tier"] for r in records} == {"Bronze", "Silver", "Gold", "Platinum"}
    assert {r["age_group"] for r in records} == {"18-25", "26-35", "36-45", "46-55", "56-65", "65+"}
    signups = [dt.date.fromisoformat(r["signup_date"]) for r in records]
    assert min(signups) >= dt.date(2022, 9, 15) and max(signups) < dt.date(2025, 9, 15)


def test_each_dirty_kind_appears_at_its_share_of_the_rate(tmp_path):
    rows, rate, customers = 70_000, 0.14, 500
    out = tmp_path / "dirty.csv"
    write_sales_csv(SalesSpec(rows=rows, customers=customers, dirty_rate=rate), out)
    df = read_raw(out)
    assert len(df) == rows
    known = {f"CUST{i:04d}" for i in range(1, customers + 1)}
    empty = (df == "").any(axis=1)
    qty = pd.to_numeric(df["quantity"], errors="coerce")
    parsed_date = pd.to_datetime(df["date"], format="%Y-%m-%d", errors="coerce")
    complete = ~empty & (qty > 0)
    amount_ok = df["total_amount"].where(complete, "0").map(cents) == (
        qty.where(complete, 0).astype(int) * df["unit_price"].where(complete, "0").map(cents)
    )
    exact_dup = df.duplicated()
    found = {
        "missing_field": int(empty.sum()),
        "non_positive_quantity": int((qty <= 0).sum()),
        "invalid_date": int(((df["date"] != "") & parsed_date.isna()).sum()),
        "exact_duplicate": int(exact_dup.sum()),
        "conflicting_duplicate": int((df["transaction_id"].duplicated() & ~exact_dup).sum()),
        "unknown_customer": int(((df["customer_id"] != "") & ~df["customer_id"].isin(known)).sum()),
        "amount_mismatch": int((complete & ~amount_ok).sum()),
    }
    expected_each = rows * rate / len(found)  # 1,400
    for kind, count in found.items():
        assert abs(count - expected_each) < 0.15 * expected_each, (kind, count)


def test_zero_dirty_rate_has_no_bad_rows(default_files):
    df = read_raw(default_files[0])
    assert not df.duplicated(subset=["transaction_id"]).any()
    assert not (df == "").any().any()


def test_bad_flags_fail_with_a_clear_message():
    result = subprocess.run(
        [sys.executable, "generate_sample_data.py", "--dirty-rate", "0.9", "--output", "/dev/null"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: dirty rate must be between 0 and 0.5"


def test_help_explains_every_flag():
    text = run_script("generate_sample_data.py", "--help").stdout
    for flag in (
        "--rows",
        "--customers",
        "--days",
        "--start-date",
        "--seed",
        "--output",
        "--dirty-rate",
    ):
        assert flag in text
    text = run_script("generate_customer_data.py", "--help").stdout
    for flag in ("--customers", "--seed", "--output"):
        assert flag in text
