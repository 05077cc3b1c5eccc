"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

* The settings reference page (``reference/settings.md``) is generated from the settings schema
  by ``tasks.reference.markdown()``, so it cannot drift from the code.
* The pictures under ``examples/screenshots/`` and ``reports/benchmarks/`` live outside ``docs/``;
  they are added to the site at the same paths (``<site>/examples/screenshots/...``), so a page
  links them exactly as the file is reached from its source in the repository:
  ``../examples/screenshots/mlflow_runs.png`` from ``docs/index.md``,
  ``../../reports/benchmarks/stylegan_grid.png`` from ``docs/how-to/stylegan.md``.  The links
  therefore work both on the site and when the Markdown is read in the repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent  # the repository root: the parent of docs/
IMAGE_DIRS = ("examples/screenshots", "reports/benchmarks")
SETTINGS_PAGE = "reference/settings.md"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != SETTINGS_PAGE:
        return markdown
    if sys.path[:1] != [str(ROOT)]:
        sys.path.insert(0, str(ROOT))
    from tasks.reference import markdown as settings_reference

    return settings_reference()


def on_files(files, config):
    docs_dir = Path(config["docs_dir"]).resolve()
    for folder in IMAGE_DIRS:
        for png in sorted((ROOT / folder).glob("*.png")):
            rel = png.relative_to(ROOT).as_posix()  # examples/screenshots/mlflow_runs.png
            # The source path is relative to docs/ ("../examples/..."): what a page's link resolves
            # to.  The destination is the repository-relative path inside the site.  Included
            # explicitly: the default exclusion of names starting with "." would drop "../...".
            src = Path(os.path.relpath(png, docs_dir)).as_posix()
            files.append(File(src, src_dir=str(docs_dir), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"], dest_uri=rel,
                              inclusion=InclusionLevel.INCLUDED))
    return files
