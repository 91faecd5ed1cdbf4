"""The output folders have one name each, though three files spell them.

``glue_etl_job.py`` names the folders it writes (``ENRICHED_DIR`` ...: Glue runs the file
alone, so it cannot import them), ``pipeline/config.py`` names the same folders as key
prefixes and URIs (the runner reads the metrics and the charts read the tables there)
and the DDL in ``athena_queries.sql`` points each table's LOCATION at one. Each pair of
the three is compared here, so a rename in any one of them fails at once, not only in
an end-to-end run.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from pipeline import config as cfg
from pipeline.config import PipelineConfig
from sales_etl import arguments, context, contracts, state

RUN_ID = "run-42"
RUN_DATE = date(2026, 3, 1)


def ddl_tables(text: str, params: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{table: {location, template, partitions}}`` of every CREATE TABLE in ``text``.

    ``text`` is laid out as athena_queries.sql is: blocks that each start with a
    ``-- name: <name>`` line and hold one statement. Only the placeholders in ``params``
    are filled; Athena's own ``${year}`` / ``${month}`` stay as written.
    """
    tables = {}
    for block in re.split(r"^--\s*name:.*$", text, flags=re.MULTILINE)[1:]:
        sql = re.sub(r"\$\{(\w+)\}", lambda m: params.get(m[1], m[0]), block)
        statement = sqlglot.parse_one(sql, read="athena")
        if not (isinstance(statement, exp.Create) and statement.kind == "TABLE"):
            continue
        properties = {
            p.name: p.args["value"].name
            for p in statement.find_all(exp.Property)
            if type(p) is exp.Property
        }
        partitioned = statement.find(exp.PartitionedByProperty)
        tables[statement.find(exp.Table).name] = {
            "location": statement.find(exp.LocationProperty).this.name,
            "template": properties.get("storage.location.template"),
            "partitions": [c.name for c in partitioned.this.expressions] if partitioned else [],
        }
    return tables


def job_outputs(output_path: str) -> context.Outputs:
    """Where the job writes for ``--output_path output_path`` (no --quarantine_path)."""
    args = arguments.JobArgs(
        sales_path="in/s.csv", customers_path="in/c.json", output_path=output_path
    )
    return context.Outputs.for_run(args, RUN_ID, RUN_DATE)


# --- the DDL reader itself, on hand-written DDL ------------------------------------------


def test_ddl_tables_reads_each_create_table_and_nothing_else() -> None:
    text = """-- Header comment.

-- name: create_database
create database if not exists ${database}

-- name: create_orders
-- One row per order.
CREATE EXTERNAL TABLE IF NOT EXISTS ${database}.orders (id string, amount decimal(12, 2))
PARTITIONED BY (year int, month int)
STORED AS PARQUET
LOCATION 's3://${processed_bucket}/orders_folder/'
TBLPROPERTIES (
    'projection.enabled' = 'true',
    'storage.location.template' = 's3://${processed_bucket}/orders_folder/year=${year}/month=${month}/'
)

-- name: create_plain
create external table ${database}.plain (id string)
stored as parquet
location 's3://other-bucket/plain/'

-- name: order_count
select count(*) as n from ${database}.orders
"""
    assert ddl_tables(text, {"database": "db", "processed_bucket": "bkt"}) == {
        "orders": {
            "location": "s3://bkt/orders_folder/",
            "template": "s3://bkt/orders_folder/year=${year}/month=${month}/",
            "partitions": ["year", "month"],
        },
        "plain": {"location": "s3://other-bucket/plain/", "template": None, "partitions": []},
    }


# --- the job and pipeline/config.py -------------------------------------------------------


def test_the_job_writes_under_the_config_uris_on_s3() -> None:
    config = PipelineConfig(prefix="acme-sales", target="local")
    out = job_outputs(config.processed_uri)  # the Glue job's --output_path (deploy.py up)
    assert f"{out.enriched}/" == config.enriched_uri
    assert f"{out.summary}/" == config.summary_uri
    assert out.quarantine == f"{config.quarantine_uri}run_date=2026-03-01/{RUN_ID}.parquet"
    # Where the pipeline reads the run's metrics, on either target.
    assert out.runs_file == f"{config.runs_uri}{RUN_ID}.json"


def test_the_job_writes_under_the_config_folders_in_the_local_lake(tmp_path: Path) -> None:
    config = PipelineConfig(prefix="acme-sales", target="local", lake=tmp_path)
    # The --output_path the pipeline passes to the job on the local target.
    out = job_outputs(str(config.local_path(config.processed_uri)))
    assert Path(out.enriched) == config.local_path(config.enriched_uri)
    assert Path(out.summary) == config.local_path(config.summary_uri)
    assert Path(out.quarantine) == (
        config.local_path(config.quarantine_uri) / "run_date=2026-03-01" / f"{RUN_ID}.parquet"
    )
    assert Path(out.runs_file) == config.local_path(config.runs_uri) / f"{RUN_ID}.json"


# --- pipeline/config.py and the DDL -------------------------------------------------------


def test_the_ddl_creates_the_config_tables_at_the_config_uris() -> None:
    config = PipelineConfig(prefix="acme-sales", target="local")
    tables = ddl_tables(cfg.QUERIES_FILE.read_text(), config.sql_parameters())
    assert {cfg.ENRICHED_TABLE, cfg.SUMMARY_TABLE} <= set(tables), sorted(tables)
    for table, uri in (
        (cfg.ENRICHED_TABLE, config.enriched_uri),
        (cfg.SUMMARY_TABLE, config.summary_uri),
    ):
        assert tables[table]["location"] == uri, table
        assert tables[table]["template"] == f"{uri}year=${{year}}/month=${{month}}/", table
    # Any other table reads one of the folders the pipeline writes, too.
    processed = {config.enriched_uri, config.summary_uri, config.quarantine_uri, config.runs_uri}
    assert {t: v["location"] for t, v in tables.items() if v["location"] not in processed} == {}


# --- the job and the DDL ------------------------------------------------------------------


def test_every_ddl_location_is_a_folder_the_job_writes() -> None:
    tables = ddl_tables(cfg.QUERIES_FILE.read_text(), {"database": "db", "processed_bucket": "bkt"})
    out = job_outputs("s3://bkt/")
    tables_over = {v["location"]: v for v in tables.values()}
    # The job's partition folders (year=2025/month=9), as Athena's projection spells them.
    partition_path = "/".join(f"{c}=${{{c}}}" for c in contracts.PARTITION_COLUMNS)
    # The two tables over the job's partitioned output, partitioned as the job writes it.
    for folder in (out.enriched, out.summary):
        assert f"{folder}/" in tables_over, (folder, sorted(tables_over))
        table = tables_over[f"{folder}/"]
        assert table["partitions"] == list(contracts.PARTITION_COLUMNS)
        assert table["template"] == f"{folder}/{partition_path}/"
    written = {f"{out.enriched}/", f"{out.summary}/"} | {
        f"s3://bkt/{folder}/" for folder in (contracts.QUARANTINE_DIR, contracts.RUNS_DIR)
    }
    assert set(tables_over) - written == set()


def test_the_job_state_and_superseded_folders_are_the_config_prefixes() -> None:
    """The Glue role may write only the prefixes the config names: the job's must be among them."""

    assert cfg.SUPERSEDED_PREFIX == contracts.SUPERSEDED_DIR + "/"
    assert cfg.STATE_PREFIX == state.STATE_DIR + "/"
