"""Every tuning constant of the job, each with the reason for its value.

Correctness does not depend on any of them: each picks how fast the same result comes.
docs/benchmarks.md says how they were measured (``make bench-etl``).
"""

from __future__ import annotations

# An input (sales and customers together) of at most this size is a small run, mostly
# the JVM's first pass through Spark's code. Such a run is evaluated without generated
# code: compiling the row rules costs more than interpreting them on so few rows. The
# gain ends near 10 MB (a daily file of 35 MB takes twice the CPU interpreted); 4 MiB
# keeps a margin.
SMALL_INPUT_BYTES = 4 * 1024 * 1024

# Spark SQL settings that trade nothing but speed (the job's own settings, which the
# results depend on, are ``session.JOB_SQL_CONF``).
SPARK_TUNING = {
    # The row rules make one large generated method. HotSpot does not JIT-compile a
    # method over 8,000 bytes of bytecode, so above that the whole read-and-check stage
    # would run interpreted; at this limit Spark falls back to per-operator code instead.
    "spark.sql.codegen.hugeMethodLimit": "8000",
    # The persisted rows are a row id and one struct (sales_pass.persist_packed):
    # choosing a compression scheme for them costs more than it saves.
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "32",
    # Read splits: Spark cuts the input into (input bytes / default parallelism) pieces,
    # a multiple of the cores, unless that exceeds this cap; at the default 128 MB a
    # 605 MB file on 2 cores became 5 tasks, the last running alone.
    "spark.sql.files.maxPartitionBytes": "256m",
}

# The local driver JVM: parallel GC, not G1 (Java's default): a batch job wants
# throughput, and G1's concurrent marking competes with the tasks for the cores while
# the persisted rows fill the heap.
LOCAL_JVM_OPTIONS = ("-Duser.timezone=UTC", "-XX:+UseParallelGC")
# Added when the run reads at most C1_INPUT_BYTES (sales and customers not read before):
# the driver JVM compiles with C1 only. On 2 cores the C2 compiler threads take a core
# from a short run, and their code comes too late to pay off: a daily file of 35 MB
# takes a third less CPU with C1 only, four such files the same, the 714 MB of a
# 20-day rebuild nearly twice as much. A daily run is therefore C1-only; a rebuild is not.
C1_INPUT_BYTES = 64 * 1024 * 1024
C1_ONLY = "-XX:TieredStopAtLevel=1"

# Input bytes per partition of the repeated-id check (a shuffle of one hash per valid
# row, sorted and counted per hash): the sort is not sensitive to the partition count,
# and 16 MB keeps each sort small.
KEY_COUNT_BYTES = 16 * 1024 * 1024

# How many repeated transaction-id hashes (or duplicate-check outcomes) may be broadcast
# to every task; above it the duplicate check joins without broadcasting (slower, same
# result).
BROADCAST_KEYS = 2_000_000

# The local JVM's class-data-sharing archive (local_session): the leftovers of an
# archive being made (its JVM's class path, a partial archive) older than this are
# abandoned and removed.
CDS_STALE_SECONDS = 600
