"""The job's package (``sales_etl/``) as one zip: what Glue gets in ``--extra-py-files``
and ``spark-submit`` in ``--py-files``.

The zip is deterministic: the same code gives the same bytes (files in name order, one
fixed timestamp and mode, fixed compression), so ``deploy.py up`` can skip an upload
whose bytes the bucket already holds.

    python -m pipeline.package dist/sales_etl.zip
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

from pipeline.config import JOB_PACKAGE

# The earliest time a zip entry can carry: no build's clock leaks into the bytes.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16


def job_package_zip(package: Path = JOB_PACKAGE) -> bytes:
    """The package's ``.py`` files, under their package folder, as zip bytes."""
    buffer = io.BytesIO()
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(package.parent).as_posix(), _FIXED_TIME)
            info.external_attr = _FILE_MODE
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -m pipeline.package OUTPUT.zip\n")
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(job_package_zip())
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
