"""The job's package zip: deterministic, complete, and importable on its own."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from io import BytesIO

from pipeline.config import JOB_PACKAGE
from pipeline.package import job_package_zip


def test_zip_is_the_same_bytes_for_the_same_code(tmp_path):
    first = job_package_zip()
    # Touching every file (new mtimes) must not change the bytes.
    copy = tmp_path / "sales_etl"
    copy.mkdir()
    for path in JOB_PACKAGE.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    assert job_package_zip(copy) == first == job_package_zip()


def test_zip_holds_every_module_of_the_package_and_nothing_else():
    names = zipfile.ZipFile(BytesIO(job_package_zip())).namelist()
    expected = sorted(f"sales_etl/{p.name}" for p in JOB_PACKAGE.glob("*.py"))
    assert names == expected
    assert "sales_etl/__init__.py" in names and "sales_etl/run.py" in names


def test_the_entry_script_runs_from_the_zip_alone(tmp_path):
    """As on Glue: the script in one folder, the package only as a zip on the path."""
    (tmp_path / "job.zip").write_bytes(job_package_zip())
    script = JOB_PACKAGE.parent / "glue_etl_job.py"
    (tmp_path / "glue_etl_job.py").write_bytes(script.read_bytes())
    probe = (
        "import sys; sys.path.insert(0, 'job.zip'); import glue_etl_job, sales_etl.run; "
        "print(sales_etl.run.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
    )
    assert done.stdout.strip().startswith("job.zip")
