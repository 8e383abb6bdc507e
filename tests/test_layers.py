"""The dependency graph runs one way: bench (the library) <- regimes (plug-ins) <- reports, and only the command
line (bench.cli, run_bench.py) ties them together. The library reaches regimes through bench.registry."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# entry points compose every package: the CLI, and the benchmarks that time the report's loading and drawing
APPLICATION = {"bench/cli.py", "bench/perf/report.py", "bench/perf/results.py"}
FORBIDDEN = {"bench": {"regimes", "reports"}, "regimes": {"reports"}, "reports": {"regimes"}}


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports anywhere in it (at module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_against_the_direction(package):
    offenders = {}
    for path in sorted((REPO / package).rglob("*.py")):
        name = str(path.relative_to(REPO))
        if name in APPLICATION:
            continue
        wrong = _imported_packages(path) & FORBIDDEN[package]
        if wrong:
            offenders[name] = sorted(wrong)
    assert offenders == {}


def test_the_engine_loads_regimes_only_when_it_looks_one_up():
    script = ("import sys, bench.training.engine, bench.scheduler.execute, bench.features, bench.results\n"
              "before = {'regimes', 'reports'} & set(sys.modules)\n"
              "from bench.registry import get_regime\n"
              "get_regime('lora')\n"
              "print(sorted(before), 'regimes' in sys.modules, 'reports' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True", "False"]
