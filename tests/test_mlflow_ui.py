"""The MLflow UI's compare-runs page, for real: a pipeline run (2 variants) writes a store, `mlflow
server` serves it on loopback, and headless Chromium renders the comparison, which must show both
variant runs and each one's FID.

Needs Debian's chromium (/usr/bin/chromium): .ci/run installs it.  Without it the test is skipped
locally and fails under CI (CI=1)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
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
def test_mlflow_ui_compare_page_shows_both_variants_and_their_fid(tmp_path, isolated_stores):
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

    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PATH": venv_path()}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", uri, "--workers", "1"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        t0 = time.time()
        while True:
            try:
                if urllib.request.urlopen(base + "/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, server.stdout.read()[-3000:]
            assert time.time() - t0 < 180, "mlflow server did not answer /health within 180 s"
            time.sleep(1)
        ids = json.dumps([r.info.run_id for r in runs.values()])
        url = f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([exp.experiment_id])}"
        page = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1920,4000",
             "--virtual-time-budget=30000", "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
        assert page.returncode == 0, page.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(30)
    tokens = _visible_text(page.stdout)
    assert "Comparing" in tokens and "Runs" in tokens, " ".join(tokens)[:2000]
    names, table = _metrics_table(tokens)
    assert sorted(names) == ["dcgan", "mlp"]
    assert "fid" in table, table.keys()
    for col, variant in enumerate(names):
        shown = float(table["fid"][col])
        # the UI rounds to 5 significant digits
        assert shown == pytest.approx(runs[variant].data.metrics["fid"], rel=1e-4), (variant, table["fid"])
