"""The run's HTML page, from one run_pipeline.py run on hostile data, read as a person would.

The inputs are generated (5% dirty rows, so the quarantine fills in), then product and
region names and both file names are replaced by markup meant to break out of the
page (``<script>``, ``"><img onerror=...>``) and by a very long name. Two earlier runs'
metrics files, one of them a bad day, are put under ``_runs/`` first. The page is
parsed with Python's HTML parser: no element or attribute came from the data, every
image decodes, and every figure equals the metrics file, the Parquet lake (DuckDB) or
the raw files. Then Chromium opens it (``tests/chromium_page.py``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from chromium_page import find_chromium, visit
from PIL import Image

from pipeline.datagen import SalesSpec, generate_customers, write_customers_ndjson, write_sales_csv
from pipeline.sql import analytic_names

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "report-test"
RUN_ID = "page-run"
MAX_RATE = 0.1

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
LONG = "Camera " + "with-a-very-long-name-" * 15
HOSTILE_NAMES = {
    "Laptop": SCRIPT,
    "Mouse": IMG,
    "Camera": LONG,
    "North": "<b onmouseover=alert(3)>North</b>",
    "Central": "'><svg onload=alert(4)>",
}
SALES_FILE = 'sales "><svg onload=alert(6)>.csv'
CUSTOMERS_FILE = 'customers "><img src=x onerror=alert(5)>.json'

# Two earlier runs: an ordinary day and a bad one (a quarter of the rows quarantined).
EARLIER = [
    {
        "run_id": "ordinary-day",
        "run_date": "2026-01-01",
        "started_at": "2026-01-01T06:00:00Z",
        "status": "succeeded",
        "mode": "incremental",
        "rows_read": {"sales": 1000, "customers": 100},
        "rows_written": {"enriched": 1089},
        "quarantined_total": 11,
        "durations_seconds": {"total": 12.5},
    },
    {
        "run_id": "bad-day",
        "run_date": "2026-01-02",
        "started_at": "2026-01-02T06:00:00Z",
        "status": "succeeded",
        "mode": "incremental",
        "rows_read": {"sales": 1000, "customers": 0},
        "rows_written": {"enriched": 750},
        "quarantined_total": 250,
        "durations_seconds": {"total": 11.0},
    },
]

pytestmark = pytest.mark.slow


# --------------------------------------------------------------- a small DOM, stdlib only


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    children: list[Element | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if e.tag == tag
            and all(e.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())
        ]

    def by_id(self, element_id: str) -> Element:
        [found] = [e for e in self.iter() if e.attrs.get("id") == element_id]
        return found

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


VOID = {"meta", "img", "br", "hr", "input", "link", "source", "area", "base", "col", "wbr"}


class TreeBuilder(HTMLParser):
    """The document as the HTML tokenizer reads it: what a browser would make elements of."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.raw_text: dict[str, list[str]] = {}  # <style> text, unparsed

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)
        if self.stack[-1].tag in ("style", "script"):
            self.raw_text.setdefault(self.stack[-1].tag, []).append(data)


def parse(html: str) -> tuple[Element, TreeBuilder]:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root, builder


def rows_of(table: Element) -> list[list[str]]:
    body = table.find_all("tbody")[0]
    return [[td.text().strip() for td in tr.find_all("td")] for tr in body.find_all("tr")]


# ---------------------------------------------------------------------------- the run


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """Generated sales with hostile names in place of some products and regions."""
    spec = SalesSpec(rows=3000, customers=120, seed=7, dirty_rate=0.05)
    plain = folder / "plain.csv"
    write_sales_csv(spec, plain)
    sales, customers = folder / SALES_FILE, folder / CUSTOMERS_FILE
    with plain.open(newline="") as src, sales.open("w", newline="") as dst:
        writer = csv.writer(dst)
        for row in csv.reader(src):
            writer.writerow([HOSTILE_NAMES.get(v, v) for v in row])
    plain.unlink()
    write_customers_ndjson(generate_customers(120, 7, spec.start_date), customers)
    return sales, customers


@dataclass
class PageRun:
    lake: Path
    charts: Path
    report_dir: Path
    result: subprocess.CompletedProcess
    html: str
    dom: Element
    builder: TreeBuilder

    @property
    def processed(self) -> Path:
        return self.lake / f"{PREFIX}-processed"

    def metrics(self) -> dict:
        return json.loads((self.processed / "_runs" / f"{RUN_ID}.json").read_text())


@pytest.fixture(scope="module")
def page_run(tmp_path_factory) -> PageRun:
    base = tmp_path_factory.mktemp("report")
    inputs = base / "inputs"
    inputs.mkdir()
    sales, customers = write_inputs(inputs)
    lake, charts, report_dir = base / "lake", base / "charts", base / "pages"
    runs = lake / f"{PREFIX}-processed" / "_runs"
    runs.mkdir(parents=True)
    for earlier in EARLIER:
        (runs / f"{earlier['run_id']}.json").write_text(json.dumps(earlier))
    result = subprocess.run(
        [
            sys.executable, "run_pipeline.py", "--lake", str(lake), "--prefix", PREFIX,
            "--charts-dir", str(charts), "--report-dir", str(report_dir), "--run-id", RUN_ID,
            "--sales-path", str(sales), "--customers-path", str(customers),
            "--max-quarantine-rate", str(MAX_RATE),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    html = (report_dir / "index.html").read_text(encoding="utf-8")
    dom, builder = parse(html)
    return PageRun(lake, charts, report_dir, result, html, dom, builder)


# ---------------------------------------------------------------------------- the tests


def test_the_page_is_written_twice_and_its_path_printed_last(page_run):
    index, copy = page_run.report_dir / "index.html", page_run.report_dir / f"{RUN_ID}.html"
    assert index.read_bytes() == copy.read_bytes()
    lines = page_run.result.stdout.strip().splitlines()
    assert lines[-1] == f"Report: {index}"
    assert f"Report copy for this run: {copy}" in lines
    stages = page_run.result.stdout.split("Stage durations\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in stages][-2:] == ["charts", "report"]


def test_nothing_on_the_page_points_at_a_network_address(page_run):
    dom = page_run.dom
    for element in dom.iter():
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = element.attrs.get(name)
            if value is not None:
                assert value.startswith("data:image/png;base64,"), (element.tag, name)
    styles = "".join(page_run.builder.raw_text.get("style", []))
    assert "url(" not in styles and "@import" not in styles
    assert not [e for e in dom.iter() if e.tag in ("link", "script", "iframe", "object", "embed")]
    [csp] = dom.find_all("meta", http_equiv="Content-Security-Policy")
    assert csp.attrs["content"].startswith("default-src 'none'; img-src data:;")


def test_no_element_or_attribute_came_from_the_data(page_run):
    dom = page_run.dom
    tags = {e.tag for e in dom.iter()}
    assert not tags & {"script", "svg"}  # the hostile names' own elements
    assert not [b for b in dom.find_all("b") if set(b.attrs) - {"id"}]  # only the page's own
    images = dom.find_all("img")
    assert len(images) == 6
    assert all(set(img.attrs) == {"src", "alt"} for img in images)
    for element in dom.iter():
        assert not [a for a in element.attrs if a.startswith("on")], element
    # The names are there, as text: in the chart data, the inputs, the raw records.
    text = dom.text()
    for name in [*HOSTILE_NAMES.values(), SALES_FILE, CUSTOMERS_FILE]:
        assert name in text, name
    inputs = dom.by_id("inputs").text()
    assert SALES_FILE in inputs and CUSTOMERS_FILE in inputs
    raw = "".join(pre.text() for pre in dom.by_id("quarantine").find_all("pre"))
    assert "<script>alert(1)</script>" in raw or "onerror=alert(2)" in raw


def test_every_chart_decodes_with_its_title_and_alt_text(page_run):
    figures = page_run.dom.by_id("charts").find_all("figure")
    assert [f.find_all("figcaption")[0].text() for f in figures] == [
        "Revenue by region", "Top products", "Monthly trend", "Customer tiers", "Age groups",
        "Transaction amounts",
    ]  # fmt: skip
    pngs = sorted(page_run.charts.glob("*.png"))
    assert len(pngs) == 6
    for figure, png in zip(figures, pngs, strict=True):
        [img] = figure.find_all("img")
        data = base64.b64decode(img.attrs["src"].split(",", 1)[1], validate=True)
        assert data == png.read_bytes()
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.format == "PNG" and picture.size[0] > 500
        assert figure.attrs["data-query"] in img.attrs["alt"]


def test_the_headline_figures_are_the_lakes(page_run):
    enriched = page_run.processed / "enriched"
    revenue, orders, customers, months = duckdb.sql(
        f"select sum(total_amount), count(*), count(distinct customer_id), "
        f"count(distinct (year, month)) "
        f"from read_parquet('{enriched}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()[0]
    cards = {
        card.attrs["data-figure"]: card.find_all("b")[0].text()
        for card in page_run.dom.by_id("headline").find_all("div")
        if "data-figure" in card.attrs
    }
    assert cards == {
        "revenue": f"${revenue:,.2f}",
        "orders": f"{orders:,}",
        "customers": f"{customers:,}",
        "months": f"{months:,}",
    }
    assert orders == page_run.metrics()["rows_written"]["enriched"]


def test_rows_quality_and_reconciliation_are_the_metrics_files(page_run):
    m, dom = page_run.metrics(), page_run.dom
    rows = dict(rows_of(dom.by_id("rows").find_all("table")[0]))
    assert rows == {
        "sales read": f"{m['rows_read']['sales']:,}",
        "customers read": f"{m['rows_read']['customers']:,}",
        "enriched rows written": f"{m['rows_written']['enriched']:,}",
        "summary rows written": f"{m['rows_written']['sales_summary']:,}",
        "exact duplicates dropped": f"{m['duplicates_dropped']:,}",
        "unknown customers (kept)": f"{m['unknown_customers']:,}",
        "quarantined": f"{m['quarantined_total']:,}",
    }
    read = m["rows_read"]["sales"] + m["rows_read"]["customers"]
    verdict = " ".join(dom.by_id("quality").text().split())
    assert (
        f"OK: quarantined {m['quarantined_total']:,} of {read:,} rows read = "
        f"{m['quarantined_total'] / read:.2%} (threshold {MAX_RATE:.2%})"
    ) in verdict
    table = rows_of(dom.by_id("reconciliation").find_all("table")[0])
    assert table == [
        [
            source,
            *(f"{r[k]:,}" for k in ("read", "written", "quarantined", "duplicates_dropped")),
            f"{r['superseded']:,}",
            "yes",
        ]
        for source, r in m["reconciliation"].items()
    ]
    partitions = dom.by_id("partitions")
    assert f"({len(m['partitions_written'])})" in partitions.text()
    assert ", ".join(m["partitions_written"]) in partitions.text()


def test_quarantine_shows_each_reason_with_up_to_five_of_its_raw_records(page_run):
    m = page_run.metrics()
    files = page_run.processed / "quarantine" / "run_date=*" / f"{RUN_ID}.parquet"
    raw = duckdb.sql(
        f"select source, reason, raw_record from read_parquet('{files}', hive_partitioning = false)"
    ).fetchall()
    assert raw
    entries = page_run.dom.by_id("quarantine").find_all("tr", class_="reason")
    expected = {
        (source, reason): count
        for source, reasons in m["rows_quarantined_by_source"].items()
        for reason, count in reasons.items()
    }
    assert len(expected) >= 4  # the generator's dirty kinds
    seen = {}
    for entry in entries:
        key = (entry.attrs["data-source"], entry.attrs["data-reason"])
        seen[key] = int(entry.find_all("td")[2].text().replace(",", ""))
        samples = [pre.text() for pre in entry.find_all("pre")]
        assert len(samples) == min(5, expected[key])
        records = {r for s, why, r in raw if (s, why) == key}
        assert set(samples) <= records
    assert seen == expected


def test_inputs_list_every_raw_file_with_its_bytes(page_run):
    m = page_run.metrics()
    for source, folder, name in (
        ("sales", "sales_data_csv", SALES_FILE),
        ("customers", "customer_demographics_json", CUSTOMERS_FILE),
    ):
        [row] = page_run.dom.by_id("inputs").find_all("tr", data_source=source)
        [item] = row.find_all("li")
        size = (page_run.lake / f"{PREFIX}-raw" / "input" / folder / name).stat().st_size
        assert item.find_all("b")[0].text() == name  # bold: read this run
        assert f"{size:,} B" in item.text()
        assert row.find_all("td")[-1].text().startswith(f"{m['bytes_read'][source]:,} B")


def test_every_named_query_is_listed_with_its_rows(page_run):
    table = page_run.dom.by_id("queries").find_all("table")[0]
    listed = rows_of(table)
    assert [row[0] for row in listed] == analytic_names()
    summary = page_run.result.stdout.split("Queries (")[1].split("\n\n")[0].splitlines()[2:]
    printed = {line.split()[0]: line.split()[1] for line in summary}
    for name, rows, _seconds, _bytes in listed:
        assert printed[name] == rows


def test_the_trend_lists_the_runs_and_marks_the_bad_day(page_run):
    m = page_run.metrics()
    runs = [tr for tr in page_run.dom.by_id("trend").find_all("tr") if "run" in tr.classes()]
    assert [tr.attrs["data-run"] for tr in runs] == ["ordinary-day", "bad-day", RUN_ID]
    assert [("over" in tr.classes(), "current" in tr.classes()) for tr in runs] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    read = m["rows_read"]["sales"] + m["rows_read"]["customers"]
    cells = [td.text().strip() for td in runs[-1].find_all("td")]
    assert cells[3:7] == [
        f"{read:,}",
        f"{m['rows_written']['enriched']:,}",
        f"{m['quarantined_total']:,}",
        f"{m['quarantined_total'] / read:.2%}",
    ]
    assert [td.text().strip() for td in runs[1].find_all("td")][3:7] == [
        "1,000", "750", "250", "25.00%",
    ]  # fmt: skip


# -------------------------------------------------------------------------- in Chromium

REQUIRED = os.environ.get("REPORT_BROWSER_TEST") == "required"


@pytest.mark.skipif(
    find_chromium() is None and not REQUIRED,
    reason="no chromium on PATH (.ci/run installs it and sets REPORT_BROWSER_TEST=required)",
)
@pytest.mark.parametrize("width", [1200, 390], ids=["laptop", "phone"])
def test_chromium_opens_the_page_with_no_error_and_no_request(page_run, width, tmp_path):
    page = page_run.report_dir / "index.html"
    seen = visit(page, width=width)

    assert seen.problems() == []
    assert [url for url in seen.requests if not url.startswith("data:")] == [page.as_uri()]
    assert len(seen.images) == 6
    assert all(i["complete"] and i["width"] > 500 and i["alt"] for i in seen.images)
    assert seen.viewport_width == width
    assert seen.scroll_width <= width  # nothing wider than the screen: no sideways scrolling
    shot = tmp_path / f"report-{width}.png"
    shot.write_bytes(seen.screenshot)
    with Image.open(shot) as picture:
        assert picture.size[0] == width and picture.size[1] > 2000
