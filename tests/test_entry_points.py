"""Every documented command starts: each ``python -m bn_repro.*`` module with a main
and each script in scripts/ prints its usage for --help (exit 0, no traceback, no
CUDA/TPU probing lines), and the README's command lines name only flags that exist."""

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "bn_repro").rglob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)
SCRIPTS = sorted(f"scripts/{path.name}" for path in (ROOT / "scripts").glob("*.py"))
ENTRY_POINTS = [f"-m {module}" for module in MODULES] + SCRIPTS
# What a start-up must not print on a machine without accelerators.
PROBING = re.compile(
    r"cuda drivers|cuInit|libtpu\.so|Unable to initialize backend|Traceback", re.IGNORECASE
)


@cache
def _help_outputs() -> dict[str, subprocess.CompletedProcess]:
    """--help of every entry point, run two at a time (the suite's budget is wall time)."""

    def run(entry: str) -> subprocess.CompletedProcess:
        command = [sys.executable, *entry.split(), "--help"]
        try:
            return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as error:  # that entry point's test fails, alone
            return subprocess.CompletedProcess(command, -1, "", f"timed out: {error}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ENTRY_POINTS, pool.map(run, ENTRY_POINTS), strict=True))


def test_the_entry_points_are_found():
    assert {"-m bn_repro.main", "-m bn_repro.evaluate", "-m bn_repro.ensemble"} <= set(ENTRY_POINTS)
    assert "scripts/import_weights.py" in ENTRY_POINTS


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_help_prints_usage_quietly(entry):
    result = _help_outputs()[entry]
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower() or "flags:" in result.stdout, result.stdout[:500]
    assert not PROBING.search(result.stdout + result.stderr), result.stderr[-2000:]


def _readme_commands() -> list[tuple[str, str]]:
    """(entry point, command line) of each `python -m bn_repro.X` / `python scripts/X.py`
    the README and the docs/ pages show, continuation lines joined."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text() for page in pages).replace("\\\n", " ")
    found = []
    for match in re.finditer(
        r"python (-m bn_repro\.[a-z_.]+|scripts/[a-z_0-9]+\.py)([^\n`]*)", text
    ):
        found.append((match.group(1), match.group(2)))
    return found


def test_readme_commands_name_only_existing_flags():
    commands = _readme_commands()
    assert len(commands) > 10
    unknown = []
    for entry, line in commands:
        assert entry in ENTRY_POINTS, f"README runs {entry}, which is not an entry point"
        usage = _help_outputs()[entry].stdout
        for flag in re.findall(r"(?<![\w-])--([a-z_0-9]+)", line):
            if not re.search(rf"--(\[no\])?{flag}\b", usage):
                unknown.append(f"python {entry} ... --{flag}")
    assert not unknown, f"README flags that the command does not define: {unknown}"
