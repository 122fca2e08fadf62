"""The size of the experiment code: lines per module, long functions, long parameter lists.

    python benchmarks/code_size.py [--smoke]
"""
import argparse
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minireptile"
EXPERIMENT = ("train.py", "tasks", "analysis.py", "combinations.py", "joint.py", "comparison.py", "variance.py",
              "config.py", "outputs.py", "seeds.py", "cli.py", "_shell.py", "study.py")
MAX_LINES, MAX_POSITIONAL = 60, 8


def files():
    for name in EXPERIMENT:
        path = PACKAGE / name
        yield from sorted(path.glob("*.py")) if path.is_dir() else [path] if path.exists() else []


def functions(path):
    """(name, lines, positional parameters) of every function in ``path``."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = len(a.posonlyargs) + len(a.args) - (1 if a.args and a.args[0].arg in ("self", "cls") else 0)
            yield node.name, node.end_lineno - node.lineno + 1, positional


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the same (it takes a second)")
    parser.parse_args()
    total, rows = 0, []
    for path in files():
        lines = len(path.read_text().splitlines())
        total += lines
        rows.append((str(path.relative_to(PACKAGE)), lines))
    for name, lines in rows:
        print(f"{name:28s} {lines:5d}")
    shell = sum(lines for name, lines in rows if name in ("cli.py", "_shell.py"))
    print(f"{'experiment code':28s} {total:5d}   (target <= 3000)")
    print(f"{'cli.py + _shell.py':28s} {shell:5d}   (target <= 400)")
    long = [(p.name, n, l) for p in files() for n, l, _ in functions(p) if l > MAX_LINES]
    wide = [(p.name, n, k) for p in files() for n, _, k in functions(p) if k > MAX_POSITIONAL]
    print(f"functions over {MAX_LINES} lines: " + (", ".join(f"{f}:{n} ({l})" for f, n, l in long) or "none"))
    print(f"functions with over {MAX_POSITIONAL} positional parameters: "
          + (", ".join(f"{f}:{n} ({k})" for f, n, k in wide) or "none"))


if __name__ == "__main__":
    main()
