"""The layer order of docs/architecture.md, enforced: every import in src/cove, at module level or inside a
function, static or through importlib, goes to the same layer or a lower one, except the few exceptions
listed here with their reason.

Lowest first: errors -> store -> checkpoint, tokenization, hub (and data, metrics, which never import
models) -> models -> generation -> pipelines, training -> server, cli. ``cove/__init__.py`` (the lazy
public API) is above them all; a module that reaches a name through it (``import cove; cove.AutoModel``)
is checked against the module that defines the name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import cove

SRC = Path(cove.__file__).parent

LAYERS = {
    "errors": 0,
    "hardware": 0,  # bf16 native or emulated: below everything that takes a dtype
    "store": 1,
    "checkpoint": 2,
    "tokenization": 2,
    "hub": 2,
    "data": 2,
    "metrics": 2,
    "models": 3,
    "quant": 3,  # packed weights and their kernels: modules the model loader swaps in (models/ <-> quant/)
    "generation": 4,
    "pipelines": 5,
    "training": 5,
    "server": 6,
    "cli": 6,
    "demo": 6,  # gradio apps over the pipelines; reads the inference API's task rule (server/inference/tasks.py)
}

# (importer, imported module) -> why it may go up; each must be inside a function, and still be used
EXCEPTIONS = {
    ("cove.models.causal", "cove.generation.utils"): (
        "GenerationMixin.generate imports the generation loop when called, as transformers' GenerationMixin "
        "does: the models stay usable without it, generation builds on them"
    ),
    ("cove.models.seq2seq", "cove.generation.encoder_decoder"): (
        "Seq2SeqGenerationMixin.generate imports the encoder-decoder generation loop when called, for the "
        "same reason as GenerationMixin.generate"
    ),
    ("cove.metrics.perplexity", "cove.models.auto"): (
        "perplexity(model_id='name') loads the model through the public cove.AutoModelForCausalLM at call "
        "time (evaluate's API takes a name); given model= objects it never touches models/"
    ),
}

_MODULE_NAME = re.compile(r"^cove(\.\w+)+$")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _public_names() -> dict[str, str]:
    names = dict(cove._EXPORTS)
    names.update({sub: f"cove.{sub}" for sub in cove._SUBMODULES})
    return names


def _through_root(name: str) -> str | None:
    """The module behind ``cove.<name>`` (a lazy re-export or a subpackage); None for the root's own names."""
    return _public_names().get(name)


class _Collector(ast.NodeVisitor):
    def __init__(self, importer: str, is_package: bool):
        self.importer = importer
        self.package = importer if is_package else importer.rpartition(".")[0]
        self.depth = 0
        self.found: list[Import] = []
        self.imports_root = False
        self.uses_importlib = False

    def add(self, target: str | None, node: ast.AST) -> None:
        if target and (target == "cove" or target.startswith("cove.")):
            self.found.append(Import(self.importer, target, getattr(node, "lineno", 0), self.depth > 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "cove":
                self.imports_root = True
            else:
                self.add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == "cove":
            for alias in node.names:
                self.add(_through_root(alias.name), node)
        else:
            self.add(module, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module":
            self.uses_importlib = True
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and first.value == "cove":
                self.imports_root = True  # cove = importlib.import_module("cove"); cove.AutoModel...
        self.generic_visit(node)


def _dynamic_targets(tree: ast.AST) -> list[tuple[str, int]]:
    """Module names in string literals (tables of modules to import) and f-string prefixes
    (``f"cove.metrics.{name}"`` -> cove.metrics)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            out.append((node.value, node.lineno))
        elif isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                prefix = head.value.rpartition(".")[0]
                if _MODULE_NAME.match(prefix):
                    out.append((prefix, node.lineno))
    return out


def _root_attributes(tree: ast.AST, importer: str) -> list[Import]:
    """``cove.<name>`` attribute reads in a module that does ``import cove``: imports through the public API."""
    out = []

    def walk(node: ast.AST, depth: int) -> None:
        inner = depth + isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "cove"
            and (target := _through_root(node.attr)) is not None
        ):
            out.append(Import(importer, target, node.lineno, depth > 0))
        for child in ast.iter_child_nodes(node):
            walk(child, inner)

    walk(tree, 0)
    return out


def collect_imports(source: str, importer: str, is_package: bool = False) -> list[Import]:
    tree = ast.parse(source)
    collector = _Collector(importer, is_package)
    collector.visit(tree)
    found = collector.found
    if collector.imports_root:
        found += _root_attributes(tree, importer)
    if collector.uses_importlib:
        found += [Import(importer, target, line, True) for target, line in _dynamic_targets(tree)]
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) == 1:
        return None  # the root package: the public API, above every layer
    return LAYERS.get(parts[1])


def violations(imports: list[Import]) -> list[str]:
    out = []
    for imp in imports:
        src, dst = layer(imp.importer), layer(imp.target)
        if src is None or dst is None or dst <= src:
            continue
        if (imp.importer, imp.target) in EXCEPTIONS and imp.in_function:
            continue
        where = "inside a function" if imp.in_function else "at module level"
        out.append(f"{imp.importer}:{imp.line} imports {imp.target} ({where}), a higher layer")
    return out


def all_imports() -> list[Import]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        name = module_name(path, SRC)
        if name == "cove":
            continue  # the lazy re-exports name every layer by design
        found += collect_imports(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return found


def test_every_folder_has_a_layer():
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    missing = sorted((folders | modules) - set(LAYERS))
    assert not missing, f"place {missing} in LAYERS here and in docs/architecture.md's layer diagram"


def test_no_module_imports_a_higher_layer():
    found = violations(all_imports())
    assert not found, "\n".join(found)


def test_every_exception_is_still_needed_and_only_called_lazily():
    imports = all_imports()
    for (importer, target), reason in EXCEPTIONS.items():
        uses = [i for i in imports if i.importer == importer and i.target == target]
        assert uses, f"{importer} no longer imports {target}: drop the exception ({reason})"
        assert all(i.in_function for i in uses), f"{importer} imports {target} at module level"


def test_the_checker_sees_every_kind_of_import():
    source = """
import importlib
import cove
from cove.generation.utils import generate
from ..pipelines import base
TABLE = {"x": "cove.server.app"}

def f():
    from cove.training import Trainer
    importlib.import_module(f"cove.cli.{name}")
    return cove.pipeline, cove.AutoTokenizer
"""
    found = violations(collect_imports(source, "cove.models.example"))
    assert [line.split(" imports ")[1].split(" (")[0] for line in found] == [
        "cove.generation.utils",
        "cove.pipelines",  # relative
        "cove.training",
        "cove.pipelines",  # through the public API
        "cove.server.app",  # a table of modules importlib loads
        "cove.cli",
    ]
    assert "at module level" in found[0] and "inside a function" in found[2]
    # the documented exception holds only inside a function
    upward = "from cove.generation.utils import generate\n"
    assert violations(collect_imports(upward, "cove.models.causal"))
    assert not violations(collect_imports(f"def g():\n    {upward}", "cove.models.causal"))
    # metrics and data never reach models, not even through the public API
    assert violations(collect_imports("import cove\nx = cove.AutoModel\n", "cove.data.load"))
    hidden = "import importlib\ncove = importlib.import_module('cove')\nx = cove.AutoModel\n"
    assert violations(collect_imports(hidden, "cove.metrics.perplexity"))
