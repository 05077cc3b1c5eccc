"""The documentation: the site builds with ``mkdocs build --strict`` (a broken link, a missing page
or an image that is not there fails), its settings page is generated from the settings schema,
and the README stays a five-minute read with the Quick start's two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strict_and_its_settings_page_lists_every_setting(tmp_path):
    from tasks.reference import settings_rows

    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = (site / "reference" / "settings" / "index.html").read_text()
    keys = {r.key for r in settings_rows()}
    assert {"seed", "prepare.dataset", "train.batch_size", "evaluate.diversity.net",
            "train.variants.<name>.tricks.r1"} <= keys
    missing = [k for k in keys if k.replace("<", "&lt;").replace(">", "&gt;") not in page]
    assert not missing, missing
    for page in ("how-to/own-folder", "how-to/translation", "how-to/stylegan", "how-to/plugins", "how-to/schedules",
                 "how-to/clusters", "metrics", "reliability", "benchmarks", "getting-started"):
        assert (site / page / "index.html").is_file(), page


def test_a_broken_link_fails_the_strict_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [the missing page](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\ndocs_dir: docs\n")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "missing.md" in proc.stdout + proc.stderr


def test_the_readme_is_short_with_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, re.S)[0].strip().splitlines()
    assert commands == ['python3 -m venv .venv && .venv/bin/pip install -c requirements-lock.txt -e ".[test]" '
                        '&& .venv/bin/python -m flows run', ".venv/bin/python -m pytest"]
