"""The package's shape: layers import only downward, only the run layer knows a run directory's paths,
only the CLI entry point exits, and the repository speaks only of itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "polaris"

#: Module prefix -> layer. A module may import its own layer and the ones below.
LAYERS = {
    "polaris.errors": 0, "polaris.io": 0, "polaris.progress": 0, "polaris.config": 0, "polaris.data": 0,
    "polaris.models": 0, "polaris.reward": 0, "polaris.recipe": 0,
    "polaris.generation": 1, "polaris.backends": 1,
    "polaris.train": 2, "polaris.evaluate": 2, "polaris.validation": 2, "polaris.benchmarks": 2,
    "polaris.grade": 2, "polaris.rollouts": 2,
    "polaris.run": 3,
    "polaris.commands": 4, "polaris.cli": 4,
}
#: Same layer, still forbidden: training knows nothing of evaluation (the run layer joins them).
FORBIDDEN = {"polaris.train": ("polaris.evaluate", "polaris.validation", "polaris.benchmarks", "polaris.backends",
                               "polaris.rollouts")}


def layer(module: str) -> int:
    for prefix, level in sorted(LAYERS.items(), key=lambda kv: -len(kv[0])):
        if module == prefix or module.startswith(prefix + "."):
            return level
    raise AssertionError(f"{module} has no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("polaris"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("polaris"))
    return out


SOURCES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_imports_upward(path):
    me = module_name(path)
    for target in imports(path):
        assert layer(target) <= layer(me), f"{me} (layer {layer(me)}) imports {target} (layer {layer(target)})"
        for prefix, banned in FORBIDDEN.items():
            if me.startswith(prefix):
                assert not target.startswith(banned), f"{me} imports {target}"


#: Names of files and folders inside a run directory; only polaris.run may spell them in code.
RUN_DIR_LITERALS = re.compile(
    r"^(summary\.json|recipe\.yaml|metrics\.jsonl|difficulty\.jsonl|records\.jsonl|report\.md|vllm-server\.log"
    r"|arith-(train|test)\.parquet|tb|stage-\d*|.*\.ids\.json|decisions-rank.*)$"
    r"|^(logs|models|profile|temperature|work|report)/"
)
#: Folder names, flagged when joined onto a path (``path / "logs"``).
RUN_DIR_FOLDERS = {"logs", "models", "profile", "temperature", "work", "eval", "data", "report"}


def path_literals(path: Path) -> list[str]:
    """String constants in code (docstrings left out) that spell a run directory's files or folders."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and node.right.value in RUN_DIR_FOLDERS:
            hits.append(f"{node.lineno}: / {node.right.value!r}")
        elif isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.Constant) and isinstance(v.value, str)
                                                     and v.value.startswith(("stage-", "decisions-rank"))
                                                     for v in node.values):
            hits.append(f"{node.lineno}: f-string {ast.unparse(node)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and RUN_DIR_LITERALS.search(node.value):
            hits.append(f"{node.lineno}: {node.value!r}")
    return hits


@pytest.mark.parametrize("path", [p for p in [*SOURCES, *sorted((REPO / "bench").glob("*.py"))]
                                  if SRC / "run" not in p.parents],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_run_directory_paths_live_in_the_run_layer(path):
    assert path_literals(path) == [], f"{path.relative_to(REPO)}: use polaris.run.layout.RunLayout"


def test_the_path_check_catches_what_it_should(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""summary.json in a docstring is fine."""\nx = root / "logs" / "metrics.jsonl"\n'
                     'y = root / f"stage-{k}.ids.json"\nz = "logs/tb"\n', encoding="utf-8")
    assert {int(hit.split(":")[0]) for hit in path_literals(probe)} == {2, 3, 4}


def test_only_the_cli_entry_point_exits():
    """``SystemExit`` only in the ``polaris`` entry point; the verifier worker is a process of its own
    (``python -m polaris.reward._worker``) and returns its status the same way."""
    offenders = [str(p.relative_to(REPO)) for p in SOURCES
                 if "SystemExit" in p.read_text(encoding="utf-8") or "sys.exit(" in p.read_text(encoding="utf-8")]
    assert offenders == ["src/polaris/cli.py", "src/polaris/reward/_worker.py"]


def test_one_error_base():
    from polaris.backends import BackendError
    from polaris.data.problem import DataError
    from polaris.errors import PolarisError, RecipeError, RunError, UsageError
    from polaris.run.launch import LaunchError

    assert all(issubclass(e, PolarisError) for e in (BackendError, RecipeError, DataError, LaunchError, RunError,
                                                       UsageError))


def tracked_text_files() -> list[Path]:
    import subprocess

    try:
        names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / n for n in names if Path(n).suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ""}
            and (REPO / n).is_file()]


def test_the_repository_speaks_only_of_itself():
    word = "S" + "PEC"  # spelled apart, so that this file passes its own check
    offenders = [str(p.relative_to(REPO)) for p in tracked_text_files()
                 if re.search(rf"\b{word}", p.read_text(encoding="utf-8", errors="replace"))]
    assert offenders == []


def test_docs_sections_the_code_points_to_exist():
    method = (REPO / "docs" / "method.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^## (.+)$", method, flags=re.M))
    cited, unknown = set(), []
    for p in tracked_text_files():
        text = " ".join(p.read_text(encoding="utf-8", errors="replace").split())
        for m in re.finditer(r"docs/method\.md[^§]{0,3}§ ?|(?<=[ ,])§ ", text):
            after = text[m.end():]
            match = next((h for h in headings if after.startswith(h)), None)
            if match is None:
                unknown.append(f"{p.relative_to(REPO)}: {after[:40]!r}")
            else:
                cited.add(match)
    assert len(cited) >= 8, cited  # code and docs point to every section
    assert unknown == []


def runtime_imports(path: Path) -> set[str]:
    """The polaris modules ``path`` imports when it runs, at import time or inside a function (not
    those imported for type annotations only, under ``if TYPE_CHECKING:``)."""

    def walk(nodes) -> set[str]:
        out = set()
        for node in nodes:
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                out |= walk(node.orelse)
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("polaris"):
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("polaris"))
            out |= walk(ast.iter_child_nodes(node))
        return out

    return walk(ast.parse(path.read_text(encoding="utf-8")).body)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_two_modules_import_each_other():
    """No import cycle among the package's modules, deferred imports inside functions included (the plan
    and the steps used to import each other that way); a package's ``__init__`` re-exporting its own
    modules is not a cycle."""
    modules = {module_name(p): p for p in SOURCES}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for target in runtime_imports(path):
            if target not in modules or (path.name == "__init__.py" and target.startswith(name + ".")):
                continue
            targets.add(target)
        graph[name] = targets
    assert find_cycle(graph) is None, find_cycle(graph)
