"""Plugins: your own regimes, data sets and losses without a fork.

A plugin is Python code that registers them with the decorators the built-ins use (`register_regime`,
`register_dataset`, `register_loss`). `--plugin FILE.py|module.name` names one (repeatable); installed packages
name theirs in the `ltbench.plugins` entry-point group. `load_plugins` imports each once per process, after the
built-ins (so a plugin cannot take a built-in's name), and records what it registered and its identity: its name
and the sha256 of its source, which goes into the id of every job that uses one of its parts (bench.plan), so an
edited plugin makes new jobs. Jobs carry the --plugin specs (Runtime.plugins, outside the id) and import them
again wherever they are unpickled (bench.training.job): child processes, Ray and SLURM workers.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from bench.registry import LOSSES, REGIMES, DuplicateNameError, Registry

ENTRY_POINT_GROUP = "ltbench.plugins"
HOW_TO = "see README, 'Benchmark your own method'"


class PluginError(ValueError):
    """A plugin that cannot be used (missing, broken, clashing, empty); one line naming it and the fix."""


@dataclass(frozen=True)
class Plugin:
    name: str  # a file's stem, a module's dotted name, an entry point's name
    kind: str  # file | module | entry point
    spec: str  # what imports it again in another process: the file's absolute path or the module name
    sha256: str  # of its source file(s)
    regimes: tuple[str, ...]
    datasets: tuple[str, ...]
    losses: tuple[str, ...]

    def record(self) -> dict:
        """What a run folder's manifest keeps of it."""
        return {"name": self.name, "kind": self.kind, "spec": self.spec, "sha256": self.sha256,
                "regimes": list(self.regimes), "datasets": list(self.datasets), "losses": list(self.losses)}


_LOADED: dict[str, Plugin] = {}  # spec (or "entry point NAME") -> the plugin, in the order they were loaded


def _registries() -> dict[str, Registry]:
    from bench.data import DATASETS  # importing bench.data registers the built-in data sets

    return {"regimes": REGIMES, "datasets": DATASETS, "losses": LOSSES}


def _sha256(files: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _source_hash(module) -> str:
    """The sha256 of a module's file, or of every .py file of a package: the code the plugin runs."""
    if hasattr(module, "__path__"):  # a package
        roots = [Path(p) for p in module.__path__]
        return _sha256([f for root in roots for f in root.rglob("*.py")], roots[0].parent)
    file = Path(module.__file__)
    return _sha256([file], file.parent)


def _module_name(path: Path) -> str:
    """A unique name per file, the same in every process, so the plugin's classes unpickle in workers."""
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"ltbench_plugin_{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def _import_file(path: Path):
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _where(exc: BaseException, source: str | None) -> str:
    """The last line of the traceback and the plugin's line that led to it (else where it was raised)."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    if isinstance(exc, SyntaxError):
        return f"{last} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    frame = next((f for f in reversed(frames) if f.filename == source), frames[-1] if frames else None)
    return f"{last} ({frame.filename}, line {frame.lineno})" if frame else last


def _owner(kind: str, name: str) -> str:
    plugin = next((p for p in _LOADED.values() if name in getattr(p, kind)), None)
    return f"plugin {plugin.name}" if plugin else "ltbench"


def _load(label: str, importer: Callable, fix: str, source: str | None) -> tuple:
    """Run `importer` and return (module, what it registered per registry); any failure is a PluginError.
    `source`: the plugin's file, whose line a failure names."""
    registries = _registries()
    before = {kind: set(registry.names()) for kind, registry in registries.items()}
    try:
        module = importer()
    except DuplicateNameError as exc:
        kind = next(k for k, r in registries.items() if r.kind == exc.kind)
        raise PluginError(f"{label} registers the {exc.kind} {exc.name!r}, a name {_owner(kind, exc.name)} already "
                          f"has; rename it in the plugin") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - whatever the plugin raises is one line here
        raise PluginError(f"{label} failed to import: {_where(exc, source)}; {fix}") from None
    added = {kind: tuple(sorted(set(registry.names()) - before[kind])) for kind, registry in registries.items()}
    if not any(added.values()):
        raise PluginError(f"{label} registers no regime, data set or loss; decorate its classes with "
                          f"@register_regime, @register_dataset or @register_loss ({HOW_TO})")
    return module, added


def _origin(module: str) -> str | None:
    """The file of an importable module (its __init__.py for a package), before importing it."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package that fails to import: its error comes with the import
        return None
    return found.origin if found else None


def _load_spec(spec: str) -> Plugin:
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.exists():
        path = path.resolve()
        if not path.is_file():
            raise PluginError(f"--plugin {spec}: no such file (or not a file); give the path of a .py file, or an "
                              f"installed module's name (my_package.my_plugin)")
        key = str(path)
        if key not in _LOADED:
            module, added = _load(f"--plugin {spec}", lambda: _import_file(path),
                                  f"fix the plugin file, or leave out --plugin {spec}", key)
            _LOADED[key] = Plugin(path.stem, "file", key, _source_hash(module), **added)
        return _LOADED[key]
    if spec not in _LOADED:
        if importlib.util.find_spec(spec.split(".")[0]) is None:
            raise PluginError(f"--plugin {spec}: no such file or module; give the path of a .py file, or install "
                              f"the package that provides the module {spec}")
        module, added = _load(f"--plugin {spec}", lambda: importlib.import_module(spec),
                              f"fix the module, or leave out --plugin {spec}", _origin(spec))
        _LOADED[spec] = Plugin(spec, "module", spec, _source_hash(module), **added)
    return _LOADED[spec]


def _import_entry_point(entry: importlib.metadata.EntryPoint):
    entry.load()  # the module, or an object in it (module:attr): importing the module registers
    return sys.modules[entry.module]


def _load_entry_point(entry: importlib.metadata.EntryPoint) -> Plugin:
    key = f"entry point {entry.name}"
    if key not in _LOADED:
        dist = getattr(entry.dist, "name", None) or entry.module.split(".")[0]
        module, added = _load(f"plugin {entry.name} ({entry.value}, installed by {dist})",
                              lambda: _import_entry_point(entry),
                              f"fix or uninstall the package {dist} (pip uninstall {dist})", _origin(entry.module))
        _LOADED[key] = Plugin(entry.name, "entry point", entry.module, _source_hash(module), **added)
    return _LOADED[key]


def load_plugins(specs: Iterable[str] = ()) -> list[Plugin]:
    """Import the installed plugins (entry points), then each --plugin spec (a .py path or a module name), each
    once per process; return them in that order. Raises PluginError naming the plugin and the fix."""
    entries = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    plugins = [_load_entry_point(entry) for entry in sorted(entries, key=lambda e: e.name)]
    return plugins + [_load_spec(spec) for spec in dict.fromkeys(specs)]


def plugin_identities(regime: str, dataset: str, loss: str) -> tuple[tuple[str, str], ...]:
    """(name, sha256) of each loaded plugin that registered this regime, data set or loss, sorted: what a job id
    adds for them. Built-in parts give ()."""
    return tuple(sorted({(p.name, p.sha256) for p in _LOADED.values()
                         if regime in p.regimes or dataset in p.datasets or loss in p.losses}))

