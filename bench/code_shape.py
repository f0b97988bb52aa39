"""The code's shape in figures: the size of each module in seqcopy/runs/, the longest functions in
seqcopy/, private names used across objects or modules, and status words written as literals.

    python bench/code_shape.py [CHECKOUT]    (default: this checkout)

Run it on two checkouts (say a `git worktree` of an older commit) to see what a change did.
"""

from __future__ import annotations

import ast
import pathlib
import re
import sys

STATUS_WORDS = re.compile(r'"(queued|running|completed|failed|cancelled|asking|pruned|lost|preempted)"')
LONG = 60  # lines: a function past this is listed as long


def python_files(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted([*(root / "seqcopy").rglob("*.py"), *(root / "views").rglob("*.py"), root / "app.py"])


def private_uses(tree: ast.AST) -> int:
    """``x._name`` where x is not self or cls, and ``from m import _name``."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            count += not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        if isinstance(node, ast.ImportFrom):
            count += sum(a.name.startswith("_") and not a.name.startswith("__") for a in node.names)
    return count


def main(root: pathlib.Path) -> None:
    print("module sizes in seqcopy/runs/ (lines)")
    for path in sorted((root / "seqcopy/runs").glob("*.py")):
        print(f"  {path.name:20s} {len(path.read_text().splitlines())}")
    functions, private, literals = [], {}, {}
    for path in python_files(root):
        text = path.read_text()
        tree = ast.parse(text)
        name = str(path.relative_to(root))
        if name.startswith("seqcopy/"):
            functions += [(node.end_lineno - node.lineno + 1, f"{name}:{node.name}") for node in ast.walk(tree)
                          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
        private[name] = private_uses(tree)
        literals[name] = len(STATUS_WORDS.findall(text))
    functions.sort(reverse=True)
    print(f"longest functions in seqcopy/ ({sum(n > LONG for n, _ in functions)} over {LONG} lines)")
    for lines, name in functions[:8]:
        print(f"  {lines:4d} {name}")
    for title, counts in (("private names used across objects or modules", private),
                          ("status words written as literals", literals)):
        print(f"{title}: {sum(counts.values())}")
        for name, count in sorted(counts.items(), key=lambda item: -item[1]):
            if count:
                print(f"  {count:4d} {name}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "."))
