"""The sales ETL job's code, by concern; ``glue_etl_job.py`` is its entry script.

The modules in the order the data flows through them:

- ``contracts``: the inputs' and outputs' columns, schemas, reasons and folders.
- ``arguments``: ``--sales_path`` and the others; ``files``: local paths and URIs;
  ``inputs``: both inputs checked and listed before anything is written.
- ``session`` and ``tuning``: the Spark settings; ``local_session``: Spark and the JVM
  outside Glue.
- ``readers``: raw records; ``rules``: the row rules; ``sales_pass``: the sales read
  once and checked; ``duplicates``: repeated transaction ids; ``tables``: the customer
  join, the summary and the quarantine rows.
- ``counts``: outcomes and the reconciliation; ``context``: what a run's steps share;
  ``writing``: write and verify; ``metrics``: the metrics file and CloudWatch.
- ``run``: ``run_job``, the run's four steps in order.

Glue runs the package from a zip in ``--extra-py-files``, so it imports only pyspark,
the standard library and (on Glue) boto3; never the ``pipeline`` package.
"""
