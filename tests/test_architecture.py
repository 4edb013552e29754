"""Guard rails of the layering (docs/architecture.md), read from the source with ``ast``: fast, no imports.

1. nothing in ``core/`` imports ``webui`` or ``gradio`` (not even inside a function);
2. ``python -m core --help`` and every stage's ``--help`` do not load torch (checked in a subprocess);
3. no import cycle among ``core`` modules, counting module-level imports (``if TYPE_CHECKING:`` blocks and
   imports inside functions are deferred, so they cannot form a cycle at import time);
4. stage modules import no ``argparse``: the command line belongs to the CLI layer. Today's offenders are
   listed in ``ARGPARSE_ALLOWED``; the list may only shrink (an entry that no longer imports argparse fails);
5. one home per concept: the sampler defaults and the checkpoint file layout are defined in one module each;
6. test helpers (conftest included) are imported one way: ``from tests.<helper> import ...``; no test module
   is imported by another test or a benchmark;
7. an import inside a function in ``core/`` defers a heavy library (``HEAVY``): a ``core`` module it names must
   load one at module level (directly or through its own module-level imports), a third-party module must be
   one (or load one, ``LOADS_HEAVY``). Light imports belong at the top. Modules still to be cleaned are listed
   in ``INLINE_IMPORT_ALLOWED``; the list may only shrink.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

CORE = ROOT / "core"
# The CLI layer: the only place that parses command lines (the core/cli/ package and core/__main__.py).
CLI_LAYER = {"core.cli", "core.__main__"}
# Stage modules that still define add_arguments/run_cli themselves. Remove an entry when its CLI moves out;
# do not add one.
ARGPARSE_ALLOWED: set[str] = set()


# Libraries slow enough to import that they are imported inside the function that needs them, so that
# `python -m core --help`, the UI build and light stages do not pay for them. Measured on the dev machine:
# a fresh interpreter, warm disk cache, time and peak memory of `import X` (numpy alone: 70 ms, 30 MiB).
HEAVY = {
    "torch": "1.1 s, 218 MiB (CPU build; the CUDA build loads its libraries too)",
    "gradio": "2.9 s, 131 MiB",
    "scipy": "scipy.signal 0.9 s, 100 MiB (the bare package is small; its submodules are not)",
    "pyloudnorm": "0.9 s, 100 MiB: imports scipy.signal",
    "audio_separator": "audio_separator.separator 3.5 s, 308 MiB: imports torch, onnxruntime and scipy",
    "onnxruntime": "0.18 s, 43 MiB: its native runtime library, more with GPU providers",
    "faiss": "0.25 s, 39 MiB: its native (AVX2) library",
    # Only needed for one rare action each (downloading, unpacking a .7z, the cover's mix effects): measured
    # 2026-12-01 on the loaded dev machine, time of `import X` in a fresh interpreter.
    "requests": "0.15 s (with urllib3): downloads only",
    "urllib3": "0.10 s: downloads only (requests' transport, for its exception types)",
    "py7zr": "0.26 s: its compression back-ends; .7z archives only",
    "pedalboard": "0.22 s, its native DSP library: the cover's mix effects only",
    "parselmouth": "0.14 s, 94 MiB peak (numpy alone: 24 MiB): Praat's native library; the parselmouth F0 only",
}
# Third-party modules outside HEAVY that load one of them when imported (checked by a test below).
LOADS_HEAVY = {
    "diffusers": "torch",
    "safetensors.torch": "torch",
}
# Modules whose in-function imports are still to be moved to the top (or made heavy). Remove an entry when
# its module is clean; do not add one.
INLINE_IMPORT_ALLOWED: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(CORE.rglob("*.py"))}


def imported_names(node: ast.AST, module: str) -> Iterator[str]:
    """Every module an Import/ImportFrom node names: ``from a import b`` yields ``a`` and ``a.b``."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import: resolve against the importing module's package
            package = module.split(".") if module_is_package(module) else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, *([base] if base else [])])
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def module_is_package(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").is_file()


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported: top level, and inside top-level if/try/with blocks
    (except ``if TYPE_CHECKING:``); not inside functions or classes."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
        elif isinstance(stmt, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(stmt.test):
                pending += stmt.body + stmt.orelse
        elif isinstance(stmt, ast.Try):
            pending += stmt.body + stmt.orelse + stmt.finalbody + [s for h in stmt.handlers for s in h.body]
        elif isinstance(stmt, ast.With):
            pending += stmt.body


def test_core_never_imports_the_ui() -> None:
    offenders = [
        f"{name}:{node.lineno} imports {target}"
        for name, tree in core_modules().items()
        for node in ast.walk(tree)
        for target in imported_names(node, name)
        if target.split(".")[0] in ("webui", "gradio")
    ]
    assert not offenders, offenders


def test_cli_help_does_not_load_torch() -> None:
    script = (
        "import contextlib, io, sys\n"
        "from core.cli import STAGES, main\n"
        "for argv in [['--help']] + [[stage, '--help'] for stage in STAGES]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "    if 'torch' in sys.modules:\n"
        "        sys.exit('python -m core ' + ' '.join(argv) + ' loaded torch')\n"
        "print(len(STAGES))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 9  # every stage's --help was built, including 'voice'


def test_no_import_cycles_among_core_modules() -> None:
    trees = core_modules()
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        for node in module_level_imports(tree):
            for target in imported_names(node, name):
                # importing a.b.c runs a/__init__ and a/b/__init__ first: those are edges too
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    dep = ".".join(parts[:i])
                    if dep in graph and dep != name:
                        graph[name].add(dep)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles (module-level imports): {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in strongly_connected(graph) if len(c) > 1] == [["a", "b", "c"]]


def test_stage_modules_import_no_argparse() -> None:
    uses = {
        name
        for name, tree in core_modules().items()
        for node in ast.walk(tree)
        if "argparse" in set(imported_names(node, name))
    }
    stages = uses - {m for m in uses if m in CLI_LAYER or m.startswith("core.cli")}
    assert not stages - ARGPARSE_ALLOWED, f"new argparse use outside the CLI layer: {sorted(stages - ARGPARSE_ALLOWED)}"
    assert not ARGPARSE_ALLOWED - stages, (
        f"no longer import argparse: delete from ARGPARSE_ALLOWED: {sorted(ARGPARSE_ALLOWED - stages)}"
    )


def assigned_names(tree: ast.Module) -> set[str]:
    names = set()
    for stmt in tree.body:
        targets = (
            stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        )
        for target in targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    names.add(node.id)
    return names


def test_one_definition_of_each_sampler_default_and_of_the_checkpoint_layout() -> None:
    trees = core_modules()
    for constant in ("DEFAULT_STEPS", "DEFAULT_SAMPLER", "SAMPLERS"):
        homes = [name for name, tree in trees.items() if constant in assigned_names(tree)]
        assert homes == ["core.model.samplers"], f"{constant} is defined in {homes}"
    readers = [
        p.relative_to(ROOT).as_posix()
        for p in sorted(CORE.rglob("*.py"))
        if '"step_*.pt"' in p.read_text(encoding="utf-8")
    ]
    assert readers == ["core/checkpoint_store.py"], (
        f"checkpoint files are looked up outside core/checkpoint_store.py: {readers}"
    )


def test_test_helpers_are_imported_one_way() -> None:
    # conftest counts too: pytest imports it as a top-level module, but tests import it as tests.conftest
    helpers = {p.stem for p in (ROOT / "tests").glob("*.py") if not p.name.startswith("test_")}
    offenders = []
    for path in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bare = {target.split(".")[0] for target in imported_names(node, "tests.x")} & helpers
            offenders += [f"{path.name}:{node.lineno} imports {name} (use 'from tests.{name} import')" for name in bare]
            # helpers live in helper modules: a test module is never imported by another test or a benchmark
            offenders += [
                f"{path.name}:{node.lineno} imports the test module {target} (move what it needs to a helper)"
                for target in imported_names(node, "tests.x")
                if target.startswith("tests.test_") and target.count(".") == 1
            ]
    assert not offenders, offenders


def test_building_the_web_ui_does_not_load_torch() -> None:
    """The app must serve within seconds: labels shown at build time may not import torch (~3 CPU-s)."""
    code = "import sys; from webui.app import build_app; build_app(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def is_heavy_library(name: str) -> bool:
    """``name`` (a dotted module name outside ``core``) is in HEAVY, or in a package of LOADS_HEAVY."""
    parts = name.split(".")
    return parts[0] in HEAVY or any(".".join(parts[:i]) in LOADS_HEAVY for i in range(1, len(parts) + 1))


def heavy_core_modules(trees: dict[str, ast.Module]) -> set[str]:
    """The ``core`` modules whose import loads a heavy library: directly at module level, or through the
    module-level imports of the core modules (and their parent packages) they import."""
    direct: dict[str, set[str]] = {}
    for name, tree in trees.items():
        targets = {t for node in module_level_imports(tree) for t in imported_names(node, name)}
        prefixes = {".".join(t.split(".")[:i]) for t in targets for i in range(1, len(t.split(".")) + 1)}
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}  # their __init__ runs first
        direct[name] = {p for p in prefixes | parents if p in trees and p != name}
        if any(is_heavy_library(t) for t in targets if t.split(".")[0] != "core"):
            direct[name].add("<heavy>")
    heavy = {"<heavy>"}
    changed = True
    while changed:  # a fixed point: heavy spreads up the import graph
        changed = False
        for name, deps in direct.items():
            if name not in heavy and deps & heavy:
                heavy.add(name)
                changed = True
    return heavy - {"<heavy>"}


def catches_import_error(node: ast.Try) -> bool:
    names = {n.id for h in node.handlers if h.type is not None for n in ast.walk(h.type) if isinstance(n, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def inline_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports inside functions, except those in a ``try`` that catches ImportError (its body or handlers): such a
    probe turns a missing package into one clear line or a fallback (the doctor's report, winreg on Windows)."""

    def visit(node: ast.AST, in_function: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if in_function:
                yield node
            return
        if isinstance(node, ast.Try) and catches_import_error(node):
            children: list[ast.AST] = [*node.orelse, *node.finalbody]
        else:
            children = list(ast.iter_child_nodes(node))
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in children:
            yield from visit(child, inside)

    yield from visit(tree, False)


def inline_import_offences(name: str, tree: ast.Module, trees: dict[str, ast.Module], heavy: set[str]) -> list[str]:
    """Each import inside a function of module ``name`` that defers nothing heavy, as ``module:line what``."""
    offences = []
    for node in inline_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base, *members = imported_names(node, name)
            # `from core.x import y` names the module core.x.y when y is one, else core.x
            targets = [m if m in trees else base for m in members]
        for target in dict.fromkeys(targets):  # once per module, however many names it gives
            is_core = target.split(".")[0] == "core"
            if (target in heavy) if is_core else is_heavy_library(target):
                continue
            why = "loads nothing heavy at module level" if is_core else "is not a heavy library"
            offences.append(f"{name}:{node.lineno} imports {target} inside a function, but it {why}")
    return offences


def test_imports_inside_functions_defer_a_heavy_library() -> None:
    trees = core_modules()
    heavy = heavy_core_modules(trees)
    offenders: dict[str, list[str]] = {}
    for name, tree in trees.items():
        if found := inline_import_offences(name, tree, trees, heavy):
            offenders[name] = found
    new = [line for name in sorted(set(offenders) - INLINE_IMPORT_ALLOWED) for line in offenders[name]]
    assert not new, "move these imports to the top of the module:\n" + "\n".join(new)
    clean = sorted(INLINE_IMPORT_ALLOWED - set(offenders))
    assert not clean, f"no in-function light imports left: delete from INLINE_IMPORT_ALLOWED: {clean}"


def test_the_inline_import_rule_catches_a_light_import() -> None:
    trees = core_modules()
    heavy = heavy_core_modules(trees)
    # the real modules: the decoder loads torch at module level; the atomic-write helpers load nothing heavy
    assert "core.model.decoder" in heavy and "core.fsutil" not in heavy
    snippet = ast.parse(
        "import json\n"  # module level: never an offence
        "def convert():\n"
        "    import json\n"
        "    import torch\n"
        "    from scipy.signal import resample_poly\n"
        "    from safetensors.torch import load_file\n"
        "    from core.fsutil import atomic_path\n"
        "    from core.model.decoder import SvcDecoder\n"
        "    from core.model import decoder, config\n"
        "    try:\n"
        "        import winreg\n"
        "    except ImportError:\n"
        "        import winreg_fallback\n"
        "    else:\n"
        "        import numpy\n"
        "    class Local:\n"
        "        def f(self):\n"
        "            import pathlib\n"
    )
    found = inline_import_offences("core.example", snippet, trees, heavy)
    assert [line.split(" inside")[0] for line in found] == [
        "core.example:3 imports json",
        "core.example:7 imports core.fsutil",
        "core.example:9 imports core.model.config",
        "core.example:15 imports numpy",
        "core.example:18 imports pathlib",
    ]


def test_the_libraries_said_to_load_a_heavy_one_do() -> None:
    checks = "; ".join(f"import {lib}; assert {heavy!r} in sys.modules, {lib!r}" for lib, heavy in LOADS_HEAVY.items())
    proc = subprocess.run([sys.executable, "-c", f"import sys; {checks}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
