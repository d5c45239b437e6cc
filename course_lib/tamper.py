"""Static scan of a submission's own code for attempts to subvert the hidden checks.

Student code runs in the same kernel as the hidden checks, so it could replace a check, patch the
comparison functions the checks use, or read the checks and reference solutions from disk. Grading cannot
prevent all of that inside one process; this scan makes each such attempt visible in the instructor's report.
It reads the code of every cell that is not a locked cell, so the course's own test cells never trigger it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from course_lib.notebooks import grade_id, nbgrader_metadata

# Modules whose functions the hidden checks call; assigning to their attributes changes what a check computes.
PROTECTED_MODULES = {
    "numpy", "torch", "math", "scipy", "sklearn", "builtins", "autograder", "sys", "importlib", "os",
    "pandas", "statistics", "operator", "functools", "inspect", "unittest", "pytest", "IPython", "course_lib",
}

# Names that reach the interpreter's frames, tracing or the notebook shell; with them, code can rewrite a
# check while it runs.
INTROSPECTION_NAMES = {
    "currentframe", "_getframe", "settrace", "setprofile", "addaudithook", "getouterframes",
    "get_ipython", "input_transformers_post", "input_transformers_cleanup", "set_custom_exc", "showtraceback",
    "f_globals", "f_locals", "f_back", "f_builtins", "tb_frame", "gi_frame", "cr_frame",
}

# Names whose use in an answer has no place in the course's exercises and a clear use in tampering.
SUSPICIOUS_CALLS = {
    "setattr": "setattr() on a module",
    "delattr": "delattr() on a module",
    "__import__": "__import__()",
    "exec": "exec() of generated code",
    "eval": "eval() of generated code",
}

# Attribute chains that are settings meant to be assigned (`pd.options.display.max_rows = 20`).
SETTING_PREFIXES = ("pandas.options", "torch.backends", "matplotlib.rcParams", "numpy.random.seed")

# Attributes of an object's internals. Course exercises never need them, but patching a check does.
INTERNAL_ATTRIBUTES = {"__dict__", "__code__", "__globals__", "__class__", "__closure__", "__builtins__"}

# Text that points at the grader's files.
GRADER_PATHS = ("autograder", "solutions/", "reference.py", "gradebook.db", "source/week")


@dataclass(frozen=True)
class Finding:
    """One suspicious construct in a student's cell."""

    cell: str
    """The grade id of the cell, or its position (`cell 12`) when it has none."""
    line: int
    reason: str

    def __str__(self) -> str:
        return f"possible tampering in {self.cell}, line {self.line}: {self.reason}"


class _Scanner(ast.NodeVisitor):
    def __init__(self, module_aliases: dict[str, str] | None = None) -> None:
        self.module_aliases: dict[str, str] = dict(module_aliases or {})
        self.findings: list[tuple[int, str]] = []

    def _flag(self, node: ast.AST, reason: str) -> None:
        self.findings.append((getattr(node, "lineno", 0), reason))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            root = alias.name.split(".")[0]
            self.module_aliases[(alias.asname or alias.name).split(".")[0]] = root
            if root == "autograder":
                self._flag(node, "imports the hidden checks (autograder)")
            if root == "ctypes":
                self._flag(node, "imports ctypes (raw memory access)")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        root = (node.module or "").split(".")[0]
        if root == "autograder":
            self._flag(node, "imports the hidden checks (autograder)")
        if root == "builtins":
            self._flag(node, "imports from builtins")
        for alias in node.names:
            if alias.name in INTROSPECTION_NAMES:
                self._flag(node, f"imports {alias.name} from {node.module}")
            if root in PROTECTED_MODULES and alias.name in PROTECTED_MODULES | {"stats", "testing", "special"}:
                # `from scipy import stats` binds a module, so assignments to its attributes count too.
                self.module_aliases[alias.asname or alias.name] = root
        self.generic_visit(node)

    def _protected_base(self, target: ast.AST) -> str | None:
        """Return the protected module an attribute target belongs to (`np.testing.assert_allclose` -> numpy)."""
        while isinstance(target, ast.Attribute):
            target = target.value
        if isinstance(target, ast.Name):
            module = self.module_aliases.get(target.id)
            if module in PROTECTED_MODULES:
                return module
            if target.id in ("__builtins__",):
                return "builtins"
        if isinstance(target, ast.Subscript):
            return self._subscript_base(target)
        return None

    def _subscript_base(self, target: ast.Subscript) -> str | None:
        # sys.modules["..."] = ... replaces a module for every later import.
        value = target.value
        if (isinstance(value, ast.Attribute) and value.attr == "modules"
                and isinstance(value.value, ast.Name) and self.module_aliases.get(value.value.id) == "sys"):
            return "sys.modules"
        if isinstance(value, ast.Name) and value.id == "__builtins__":
            return "builtins"
        return None

    def _dotted(self, target: ast.AST) -> str:
        """Return the target with its module alias expanded: `np.random.seed` -> `numpy.random.seed`."""
        text = ast.unparse(target)
        head, _, rest = text.partition(".")
        module = self.module_aliases.get(head)
        return f"{module}.{rest}" if module and rest else text

    def _check_targets(self, node: ast.AST, targets: list[ast.AST]) -> None:
        for target in targets:
            if isinstance(target, (ast.Tuple, ast.List)):
                self._check_targets(node, list(target.elts))
                continue
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                module = self._protected_base(target)
                if module and not self._dotted(target).startswith(SETTING_PREFIXES):
                    self._flag(node, f"assigns to {ast.unparse(target)} (module {module})")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in INTERNAL_ATTRIBUTES:
            self._flag(node, f"uses the internal attribute {node.attr}")
        if node.attr in INTROSPECTION_NAMES:
            self._flag(node, f"uses {node.attr}, which reaches frames, tracing or the notebook shell")
        if node.attr == "__setattr__" and isinstance(node.value, ast.Name) and node.value.id == "object":
            self._flag(node, "calls object.__setattr__")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node, node.targets)
        # `m = numpy` makes m another name for the module.
        if isinstance(node.value, ast.Name) and node.value.id in self.module_aliases:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.module_aliases[target.id] = self.module_aliases[node.value.id]
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "vars" and node.args:
            if self._protected_base(ast.Attribute(value=node.args[0], attr="x")):
                self._flag(node, f"calls vars() on the module {ast.unparse(node.args[0])}")
        if isinstance(func, ast.Name) and func.id in SUSPICIOUS_CALLS:
            if func.id in ("setattr", "delattr"):
                if node.args and self._protected_base(ast.Attribute(value=node.args[0], attr="x")):
                    self._flag(node, SUSPICIOUS_CALLS[func.id])
            else:
                self._flag(node, SUSPICIOUS_CALLS[func.id])
        if isinstance(func, ast.Attribute):
            owner = func.value
            owner_module = self.module_aliases.get(owner.id) if isinstance(owner, ast.Name) else None
            if owner_module == "sys" and func.attr in ("settrace", "setprofile", "_getframe", "addaudithook"):
                self._flag(node, f"calls sys.{func.attr}()")
            if owner_module == "importlib" and func.attr in ("reload", "import_module"):
                self._flag(node, f"calls importlib.{func.attr}()")
            if (isinstance(owner, ast.Attribute) and owner.attr == "modules" and isinstance(owner.value, ast.Name)
                    and self.module_aliases.get(owner.value.id) == "sys"
                    and func.attr in ("pop", "update", "__setitem__", "setdefault", "clear")):
                self._flag(node, f"changes sys.modules with {func.attr}()")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in INTROSPECTION_NAMES:
            self._flag(node, f"uses {node.id}, which reaches frames, tracing or the notebook shell")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and any(marker in node.value for marker in GRADER_PATHS):
            self._flag(node, f"refers to the grader's files ({node.value[:60]!r})")


def _parse(cell) -> ast.Module | None:
    # IPython magics and shell escapes are not Python.
    source = "\n".join(line for line in cell.source.split("\n") if not line.lstrip().startswith(("%", "!")))
    try:
        return ast.parse(source)
    except SyntaxError:
        return None  # grading reports the syntax error itself


def scan_notebook(notebook) -> list[Finding]:
    """Return the suspicious constructs in the code cells that are not locked.

    Imports anywhere in the notebook count, so `np` imported in the first cell is known in every later one.
    """
    aliases: dict[str, str] = {}
    for cell in notebook.cells:
        tree = _parse(cell) if cell.cell_type == "code" else None
        if tree is not None:
            collector = _Scanner()
            collector.visit(tree)
            aliases.update(collector.module_aliases)

    findings = []
    for index, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type != "code" or nbgrader_metadata(cell).get("locked"):
            continue
        tree = _parse(cell)
        if tree is None:
            continue
        label = f"cell {grade_id(cell)}" if grade_id(cell) else f"cell {index}"
        scanner = _Scanner(aliases)
        scanner.visit(tree)
        findings.extend(Finding(label, line, reason) for line, reason in sorted(set(scanner.findings)))
    return findings


def scan_folder(folder) -> list[str]:
    """Return a finding for each Python file or folder submitted beside the notebook.

    The grading kernel keeps the submission folder off sys.path, so such files cannot shadow the course's
    packages, but no exercise of the course needs them.
    """
    from pathlib import Path

    findings = []
    for path in sorted(Path(folder).iterdir()):
        if path.is_dir() or path.suffix in (".py", ".pth", ".so"):
            findings.append(f"possible tampering: the submission contains {path.name}{'/' if path.is_dir() else ''}, "
                            "code beside the notebook")
    return findings
