"""Every setting a message or a help text names exists: a user who follows the message gets a
setting params.yaml accepts, not a second error.  The names are collected from the string literals
of the project's code (messages, help texts, docstrings), the settings from the settings schema
(``tasks.reference``, which the documentation's settings page is generated from too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A dotted name that starts like a setting: a section of params.yaml (or a name that is not one and
# was used as if it were, such as data.root), or the short form of a variant's keys.
CANDIDATE = re.compile(r"(?<![\w./-])(?:data|seed|prepare|train|select|evaluate|export|tracking|plugins|tricks|loss|"
                       r"generator|discriminator|conditioning)(?:\.(?:[a-z_][a-z0-9_]*|<name>|\{v\}|\$\{key\}))+")
FILE_SUFFIXES = {"npz", "npy", "json", "jsonl", "py", "pt", "pth", "csv", "png", "yaml", "db", "md", "lock", "html"}


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a source file but its docstrings (which name code, not settings)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def named_settings(paths) -> list[tuple[str, int, str]]:
    found = []
    for path in paths:
        for line, text in _strings(path):
            for m in CANDIDATE.finditer(text):
                name = m.group(0)
                if name.rsplit(".", 1)[-1] in FILE_SUFFIXES:
                    continue  # a file: train.npz, dvc.lock
                name = name.replace("{v}", "<name>").replace("${key}", "<name>")
                found.append((str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path), line, name))
    return found


def _project_sources():
    return sorted(p for pkg in ("gan_models", "tasks", "flows") for p in (ROOT / pkg).rglob("*.py"))


def test_every_setting_a_message_or_help_text_names_exists():
    from tasks.config import MOVED
    from tasks.reference import setting_names

    known = setting_names() | set(MOVED)  # a moved key is named by the message that says where it went
    found = named_settings(_project_sources())
    assert len(found) > 50  # the scan sees the messages (it found 0 if the pattern broke)
    unknown = sorted({f"{where}:{line}: {name}" for where, line, name in found if name not in known})
    assert not unknown, "messages name settings that do not exist:\n" + "\n".join(unknown)


def test_the_scan_catches_a_message_naming_a_setting_that_does_not_exist(tmp_path):
    from tasks.reference import setting_names

    bad = tmp_path / "bad.py"
    bad.write_text('raise ValueError("set data.root to your folder, or prepare.image_size / train.batchsize")\n')
    names = [n for _, _, n in named_settings([bad]) if n not in setting_names()]
    assert names == ["data.root", "train.batchsize"]
