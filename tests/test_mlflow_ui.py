"""The MLflow UI, for real: a pipeline run (2 variants) writes a store, `mlflow server` serves it on
loopback, and headless Chromium renders (0) the experiment link `python -m flows ui` prints, which must
open the model-training view (the runs table), (1) the compare-runs page, which must show both variant runs
and each one's FID, and (2) a variant's run page, which must show where the run came from (the
command and the commit) and the data set it was trained on (name, digest, "training").

Needs Debian's chromium (/usr/bin/chromium): .ci/run installs it.  Without it the test is skipped
locally and fails under CI (CI=1)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import TINY, cli, copy_project, venv_path

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _visible_text(dom: str) -> list[str]:
    dom = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom)).split()


def _render(url: str, profile) -> str:
    """The DOM headless Chromium renders for `url` once the page's scripts have settled."""
    page = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={profile}", "--window-size=1920,4000",
         "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180)
    assert page.returncode == 0, page.stderr[-2000:]
    return page.stdout


def _metrics_table(tokens: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(run names in column order, metric -> values per column) from the compare page's text."""
    i = tokens.index("Name:")  # "Run Name: dcgan mlp"
    names = tokens[i + 1:i + 3]
    start = tokens.index("Metrics", i)
    section = tokens[start:tokens.index("Artifacts", start)]
    section = section[section.index("only") + 1:]  # after "Show diff only"

    def number(t):
        try:
            float(t)
            return True
        except ValueError:
            return False
    first_value = next(k for k, t in enumerate(section) if number(t))
    keys, values = section[:first_value], section[first_value:]
    assert len(values) == 2 * len(keys), (keys, values)
    return names, {k: values[2 * j:2 * j + 2] for j, k in enumerate(keys)}


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="Debian's chromium is not installed (apt-get install chromium); CI installs it")
def test_mlflow_ui_experiment_compare_and_run_pages_show_what_the_pipeline_logged(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    assert CHROMIUM, "chromium is missing: install Debian's chromium package (apt-get install chromium)"
    proj = copy_project(tmp_path / "proj", TINY)
    db = isolated_stores / "ui.db"
    uri = f"sqlite:///{db}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    runs = {r.data.tags["variant"]: r for r in client.search_runs([exp.experiment_id]) if "variant" in r.data.tags}
    assert sorted(runs) == ["dcgan", "mlp"]

    # the UI as a user starts it: `python -m flows ui` serves the store on loopback and prints the
    # experiment's link
    port = _free_port()
    log = tmp_path / "ui.log"
    env = {**os.environ, "PATH": venv_path(), "PYTHONPATH": str(proj)}
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "flows", "ui", "--port", str(port), "--tracking-uri", uri],
                                  env=env, cwd=proj, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        t0 = time.time()
        while True:
            try:
                if urllib.request.urlopen(base + "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.time() - t0 < 180, "mlflow server did not answer /health within 180 s"
            time.sleep(1)
        link = re.search(r"open (http://\S+)", log.read_text())
        assert link, log.read_text()[-3000:]
        experiment_page = _render(link.group(1), tmp_path / "chromium")
        ids = json.dumps([r.info.run_id for r in runs.values()])
        compare = _render(f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([exp.experiment_id])}",
                          tmp_path / "chromium")
        mlp = runs["mlp"]
        run_page = _render(f"{base}/#/experiments/{exp.experiment_id}/runs/{mlp.info.run_id}", tmp_path / "chromium")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)

    # the printed link opens the experiment in the model-training view: the runs table (the pipeline
    # run, its two variant runs nested under it) with its Dataset and Source columns, not the GenAI
    # overview (traces, judges)
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    text = " ".join(_visible_text(experiment_page))
    assert "Run Name" in text and "Dataset" in text and "Source" in text, text[:3000]
    assert "3 matching runs" in text, text[:3000]
    assert re.search(r"pipeline-\d{8}-\d{6} .*digits .*python -m flows run", text), text[:3000]
    assert "Judges" not in text and "Evaluation runs" not in text, text[:3000]

    tokens = _visible_text(compare)
    assert "Comparing" in tokens and "Runs" in tokens, " ".join(tokens)[:2000]
    names, table = _metrics_table(tokens)
    assert sorted(names) == ["dcgan", "mlp"]
    assert "fid" in table, table.keys()
    for col, variant in enumerate(names):
        shown = float(table["fid"][col])
        # the UI rounds to 5 significant digits
        assert shown == pytest.approx(runs[variant].data.metrics["fid"], rel=1e-4), (variant, table["fid"])

    # the run page: where the run came from (command + commit) and which data it was trained on
    text = " ".join(_visible_text(run_page))
    commit = mlp.data.tags.get("mlflow.source.git.commit")
    assert commit, "the run records no git commit"
    assert f"python -m flows run {commit[:7]}" in text, text[:3000]
    (dataset_input,) = mlp.inputs.dataset_inputs
    digest = dataset_input.dataset.digest
    assert dataset_input.dataset.name == "digits"
    assert re.search(rf"digits \({re.escape(digest[:8])}\w*\) training", text), text[:3000]
