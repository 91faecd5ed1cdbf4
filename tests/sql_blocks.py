"""What the tests ask of athena_queries.sql beyond what the pipeline itself asks."""

from __future__ import annotations

from pipeline.sql import is_ddl, load_queries


def ddl_names() -> list[str]:
    """Names of the DDL blocks, in file order (the engines run them in this order)."""
    return [name for name, sql in load_queries().items() if is_ddl(sql)]
