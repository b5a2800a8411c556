"""Check the walls of docs/ARCHITECTURE.md against the code: every room is in the rooms table,
and every import of one room by another (including those made inside functions) is one that
the importing room's row allows.

    python scripts/check_imports.py            # prints each room's imports; exit 1 on a breach

A room is a top-level module or package of ``src/cina`` (``rules.py``, ``kernels/``); imports
inside one room are free. The table's third column is read for room names: any word that names a
room (``balancing``, ``datasets.synthetic``) allows imports of that room, other words (``torch``,
``on call``) are commentary. The deprecated aliases named under the table are exempt.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "cina"
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def rooms_on_disk() -> set[str]:
    """Every room: a top-level module (stem) or package of src/cina."""
    out = set()
    for path in PACKAGE.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            out.add(path.name)
        elif path.suffix == ".py" and path.name != "__init__.py":
            out.add(path.stem)
    return out


def room_of(module: str, rooms: set[str]) -> str | None:
    """The room of a module path below cina ("kernels.lowrank" -> "kernels"); None for the
    package itself (``from cina import __version__``)."""
    head = module.split(".")[0]
    return head if head in rooms else None


def imports_by_room(rooms: set[str]) -> dict[str, dict[str, set[str]]]:
    """room -> {imported room -> the files that import it}."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        parts = list(rel.with_suffix("").parts)
        package = parts[:-1]  # the package the module lives in (an __init__'s own package too)
        if parts == ["__init__"]:
            continue  # the package's face: it only hands names on
        source = room_of(".".join(parts), rooms)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    if node.module:
                        targets.append(".".join(base + [node.module]))
                    else:
                        targets += [".".join(base + [a.name]) for a in node.names]
                elif node.module and (node.module + ".").startswith("cina."):
                    targets.append(node.module[len("cina."):])
            elif isinstance(node, ast.Import):
                targets += [a.name[len("cina."):] for a in node.names
                            if a.name.startswith("cina.")]
            for target in targets:
                room = room_of(target, rooms) if target else None
                if room is not None and room != source:
                    found.setdefault(source, {}).setdefault(room, set()).add(str(rel))
    return found


def allowed_by_doc(rooms: set[str]) -> tuple[dict[str, set[str]], set[str]]:
    """(room -> the rooms its row allows, the deprecated aliases) from docs/ARCHITECTURE.md."""
    text = DOC.read_text(encoding="utf-8")
    allowed: dict[str, set[str]] = {}
    ground = set()  # rooms that every room may import ("every room may import it")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            room = name.rstrip("/").removesuffix(".py")
            words = re.findall(r"[A-Za-z_][A-Za-z_.]*", cells[-1])
            allowed[room] = {r for w in words if (r := room_of(w, rooms)) is not None}
            if "every room may import it" in cells[1]:
                ground.add(room)
    for room in allowed:
        allowed[room] |= ground
    aliases = set()
    for para in text.split("\n\n"):
        if para.startswith("Deprecated aliases"):
            aliases = {m.split(".")[1] for m in re.findall(r"`(cina\.[a-z_.]+)` \(", para)
                       if m.count(".") == 1}
    return allowed, aliases


def main() -> int:
    rooms = rooms_on_disk()
    found = imports_by_room(rooms)
    allowed, aliases = allowed_by_doc(rooms)
    problems = []
    for room in sorted(rooms - aliases):
        if room not in allowed:
            problems.append(f"{room}: not in the rooms table of docs/ARCHITECTURE.md")
    for room, targets in sorted(found.items()):
        if room in aliases:
            continue
        print(f"{room:14s} -> {', '.join(sorted(targets))}")
        for target, files in sorted(targets.items()):
            if target not in allowed.get(room, set()):
                problems.append(f"{room} imports {target} ({', '.join(sorted(files))}), which "
                                "its row in docs/ARCHITECTURE.md does not allow")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
