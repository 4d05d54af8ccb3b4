"""CONTRIBUTING.md's map of the code is the tree itself: every module, one line each."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _mapped(text):
    """The paths the map names, rebuilt from its indentation (two spaces a level)."""
    section = text.split("## Where things live", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.DOTALL).group(1)
    paths, parents = set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        del parents[depth:]
        paths.add("".join(parents) + name)
        if name.endswith("/"):
            parents.append(name)
    return paths


def _modules():
    package = ROOT / "fastrnn"
    found = set()
    for path in package.rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        found.add(relative)
        for folder in path.relative_to(ROOT).parents:
            if folder.as_posix() not in (".", ""):
                found.add(folder.as_posix() + "/")
    return found


def test_every_module_of_the_package_is_on_the_map_and_nothing_else():
    mapped = _mapped((ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    modules = _modules()
    assert sorted(modules - mapped) == [], "modules missing from CONTRIBUTING.md's map"
    assert sorted(mapped - modules) == [], "the map names modules that do not exist"


def test_the_map_reader_sees_a_missing_module():
    """Positive control: a map without one module is caught."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.strip().startswith("loop.py"))
    mapped = _mapped(text.replace(line + "\n", ""))
    assert _modules() - mapped == {"fastrnn/training/loop.py"}
