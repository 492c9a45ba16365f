"""Third-party gateway clients whose pins clash with ours run in a virtualenv of their own, built once and
kept under .venv/compat/<name> (rebuilt when the requirement changes), driven by a script in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def compat_python(name, *requirements):
    """The python of a virtualenv holding `requirements`, building it the first time. A build that fails
    (no package index reachable) skips the test with pip's reason: the library could not be had here."""
    home = ROOT / ".venv" / "compat" / name
    python = home / "bin" / "python"
    stamp, want = home / ".requirements", "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True, capture_output=True,
                       timeout=120)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True,
                       capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not build the {name} virtualenv: {(getattr(exc, 'stderr', '') or exc)!s:.500}")
    stamp.write_text(want)
    return str(python)


def run_script(python, script, **env):
    """Run `script` with `python`; it prints one JSON document, returned parsed."""
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **{k: str(v) for k, v in env.items()}})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
