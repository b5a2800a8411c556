"""Consistency: the imports between the package's rooms are those docs/ARCHITECTURE.md allows
(``scripts/check_imports.py``), and the check itself catches a breach."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports",
                                                  ROOT / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_import_between_rooms_is_allowed_by_the_architecture_doc(capsys):
    assert _checker().main() == 0, capsys.readouterr().err


def test_the_check_finds_a_breach_and_a_missing_room(tmp_path, capsys):
    checker = _checker()
    text = checker.DOC.read_text(encoding="utf-8")
    # sensitivity.py may no longer import diagnostics, and the kernels' row disappears
    lines = []
    for line in text.splitlines():
        if line.startswith("| `sensitivity.py`"):
            cells = line.split(" | ")
            line = " | ".join(cells[:-1] + ["crossfit, _progress, _threads |"])
        if line.startswith("| `kernels/`"):
            continue
        lines.append(line)
    doc = tmp_path / "ARCHITECTURE.md"
    doc.write_text("\n".join(lines), encoding="utf-8")
    checker.DOC = doc
    assert checker.main() == 1
    err = capsys.readouterr().err
    assert "sensitivity imports diagnostics (sensitivity.py)" in err
    assert "kernels: not in the rooms table" in err
