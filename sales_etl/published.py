"""What the job publishes to CloudWatch, named once: the namespace, the dimension every
figure carries, and the metric names. ``pipeline/`` reads these too (the job's default
arguments, the Glue role's namespace condition, the quarantine-rate alarm), so a metric
renamed here is renamed for the alarm as well. No pyspark here: the deploy side imports it.
"""

from __future__ import annotations

NAMESPACE = "SalesPipeline"
# Every figure carries Pipeline=<prefix>; RowsQuarantined also comes by Source and Reason.
PIPELINE_DIMENSION = "Pipeline"
SOURCE_DIMENSION = "Source"
REASON_DIMENSION = "Reason"

SALES_ROWS_READ = "SalesRowsRead"
CUSTOMER_ROWS_READ = "CustomerRowsRead"
ROWS_WRITTEN = "RowsWritten"
ROWS_QUARANTINED = "RowsQuarantined"
EXACT_DUPLICATES_DROPPED = "ExactDuplicatesDropped"
UNKNOWN_CUSTOMERS = "UnknownCustomers"
# Quarantined rows of both sources over rows read of both: what the alarm watches.
QUARANTINE_RATE = "QuarantineRate"
