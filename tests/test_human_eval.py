"""Human evaluation (HYPE∞): the scores against hand-computed values and a plain bootstrap loop,
the study server (refusals, concurrent evaluators, durable answers), a real browser answering the
page by clicks and keys across reloads, and `python -m flows human-eval` end to end on a tiny
pipeline run, read back from metrics/human/<variant>.json and from the variant's MLflow run.

The browser tests drive Debian's chromium (/usr/bin/chromium) with Playwright (no browser
download).  Without either they are skipped locally and fail under CI (CI=1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, cli, copy_project, venv_path

from gan_models.metrics.human import hype_infinity
from tasks.reporting import human_eval as H

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extras install it
    sync_playwright = None
needs_browser = pytest.mark.skipif((CHROMIUM is None or sync_playwright is None) and not os.environ.get("CI"),
                                   reason="needs Debian's chromium (apt-get install chromium) and playwright "
                                   "(pip install -e .[test]); CI has both")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic"]


# -- scores ---------------------------------------------------------------------------------------

# (evaluator, image, image is real, said real); A: 2 of 4 wrong, B: 1 of 4, C: 2 of 2
ANSWERS = [("A", "r1", True, True), ("A", "r2", True, False), ("A", "f1", False, True), ("A", "f2", False, False),
           ("B", "r1", True, True), ("B", "r2", True, True), ("B", "f1", False, False), ("B", "f2", False, True),
           ("C", "r1", True, False), ("C", "f1", False, True)]


def _hype(rows, **kw):
    return hype_infinity(*[[r[k] for r in rows] for k in range(4)], **kw)


def test_hype_scores_match_hand_computed_values():
    s = _hype(ANSWERS, n_bootstrap=200)
    assert s["hype_inf"] == pytest.approx(5 / 10, abs=1e-15)  # 5 wrong answers of 10
    assert s["fake_error"] == pytest.approx(3 / 5, abs=1e-15)  # fakes judged real: A f1, B f2, C f1
    assert s["real_error"] == pytest.approx(2 / 5, abs=1e-15)  # reals judged fake: A r2, C r1
    per = s["per_evaluator"]
    assert {k: (v["hype_inf"], v["fake_error"], v["real_error"], v["n_answers"]) for k, v in per.items()} == {
        "A": (0.5, 0.5, 0.5, 4), "B": (0.25, 0.5, 0.0, 4), "C": (1.0, 1.0, 1.0, 2)}
    assert s["evaluator_mean"] == pytest.approx((0.5 + 0.25 + 1.0) / 3, abs=1e-15)
    assert (s["n_answers"], s["n_evaluators"], s["n_images"]) == (10, 3, 4)
    for k in ("hype_inf", "fake_error", "real_error"):
        lo, hi = s[f"{k}_ci"]
        assert 0 <= lo <= s[k] <= hi <= 1, (k, lo, s[k], hi)

    # everyone right: 0 with a zero-width interval; everyone wrong: 1
    right = [(e, i, t, t) for e, i, t, _ in ANSWERS]
    wrong = [(e, i, t, not t) for e, i, t, _ in ANSWERS]
    assert (_hype(right, n_bootstrap=50)["hype_inf"], _hype(right, n_bootstrap=50)["hype_inf_ci"]) == (0.0, [0.0, 0.0])
    assert (_hype(wrong, n_bootstrap=50)["hype_inf"], _hype(wrong, n_bootstrap=50)["hype_inf_ci"]) == (1.0, [1.0, 1.0])
    # only fakes answered: no real-only rate
    fakes = _hype([r for r in ANSWERS if not r[2]], n_bootstrap=50)
    assert fakes["real_error"] is None and fakes["real_error_ci"] is None and fakes["fake_error"] == pytest.approx(0.6)
    empty = hype_infinity([], [], [], [])
    assert empty["hype_inf"] is None and empty["n_answers"] == 0 and empty["hype_inf_ci"] is None


def test_hype_refuses_inconsistent_input():
    with pytest.raises(ValueError, match="one entry per answer"):
        hype_infinity(["A"], ["x", "y"], [True], [True])
    with pytest.raises(ValueError, match="both real and fake"):
        hype_infinity(["A", "B"], ["x", "x"], [True, False], [True, True])


def test_two_way_bootstrap_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    evaluators, images = [f"e{k}" for k in range(4)], [f"im{k:02d}" for k in range(12)]
    real = {im: k % 2 == 0 for k, im in enumerate(images)}
    rows = [(e, im, real[im], bool(rng.random() < 0.6) == real[im]) for e in evaluators for im in images
            if rng.random() < 0.8]  # some answers missing: evaluators who stopped early
    B, seed = 300, 11
    s = _hype(rows, n_bootstrap=B, seed=seed)

    # Replicate b draws evaluators, then images, with replacement from default_rng(seed); every
    # answer of a drawn evaluator on a drawn image counts once per pair of draws.  Labels are
    # indexed in sorted order.
    cells: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for e, im, t, a in rows:
        cells.setdefault((e, im), []).append((t, a))
    E, I = sorted({r[0] for r in rows}), sorted({r[1] for r in rows})
    draw = np.random.default_rng(seed)
    ev_draws, im_draws = draw.integers(0, len(E), size=(B, len(E))), draw.integers(0, len(I), size=(B, len(I)))
    stats: dict[str, list[float]] = {"hype_inf": [], "fake_error": [], "real_error": []}
    for b in range(B):
        wrong = {k: 0 for k in stats}
        total = {k: 0 for k in stats}
        for ei in ev_draws[b]:
            for ii in im_draws[b]:
                for t, a in cells.get((E[ei], I[ii]), []):
                    for k in ("hype_inf", "real_error" if t else "fake_error"):
                        total[k] += 1
                        wrong[k] += t != a
        for k in stats:
            if total[k]:
                stats[k].append(wrong[k] / total[k])
    for k, values in stats.items():
        lo, hi = np.percentile(values, [2.5, 97.5])
        assert s[f"{k}_ci"] == pytest.approx([lo, hi], rel=1e-12, abs=1e-15), k
    # the seed fixes the interval; another seed moves it
    assert _hype(rows, n_bootstrap=B, seed=seed)["hype_inf_ci"] == s["hype_inf_ci"]
    assert _hype(rows, n_bootstrap=B, seed=seed + 1)["hype_inf_ci"] != s["hype_inf_ci"]


# -- the study and its server ---------------------------------------------------------------------

def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 1), dtype=np.uint8)


def _make_study(folder: Path, n: int = 10, sha: str = "ab" * 32) -> dict:
    return H.write_study(folder, _images(n // 2, 1), _images(n // 2, 2), seed=5,
                         meta={"variant": "mlp", "checkpoint_sha256": sha, "step": 20})


@pytest.fixture
def served(tmp_path):
    """A 10-image study served on a free loopback port from a thread: (base URL, folder, truth)."""
    folder = tmp_path / "human_eval" / "mlp"
    record = _make_study(folder)
    server = H.make_server("127.0.0.1", 0)
    server.study = H.Study(folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (f"http://127.0.0.1:{server.server_address[1]}", folder,
               {im["id"]: im["truth"] for im in record["images"]})
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _request(url: str, body=None, raw: bytes | None = None) -> tuple[int, dict | bytes]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, payload = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def _answer(base, session, image, answer, ms=500):
    return _request(base + "/api/answer", {"session": session, "image": image, "answer": answer, "response_ms": ms})


def test_the_server_refuses_bad_answers_and_stores_nothing(served, tmp_path):
    base, folder, truth = served
    status, first = _request(base + "/api/session", {})
    assert status == 201 and set(first) == {"session", "image", "k", "n"} and first["k"] == 1
    sid, image = first["session"], first["image"]
    assert _answer(base, sid, image, "real")[0] == 200
    answers = folder / H.ANSWERS
    before = answers.read_bytes()
    other = _make_study(tmp_path / "other")["images"][0]["id"]  # an image of another study
    for label, (status, payload) in {
        "unknown session": _answer(base, "no-such-session", image, "fake"),
        "no session": _request(base + "/api/answer", {"image": image, "answer": "fake", "response_ms": 1}),
        "unknown image": _answer(base, sid, "0123456789abcdef", "fake"),
        "an image of another study": _answer(base, sid, other, "fake"),
        "a second answer for the same image": _answer(base, sid, image, "fake"),
        "answer not real/fake": _answer(base, sid, next(i for i in truth if i != image), "maybe"),
        "negative response time": _answer(base, sid, next(i for i in truth if i != image), "real", ms=-1),
        "response time not a number": _answer(base, sid, next(i for i in truth if i != image), "real", ms="1"),
        "body not JSON": _request(base + "/api/answer", raw=b"answer=real"),
        "body too large": _request(base + "/api/answer", raw=b"{" + b" " * 10_000 + b"}"),
        "unknown API": _request(base + "/api/delete", {}),
    }.items():
        assert 400 <= status < 500, (label, status, payload)
        assert "error" in payload, (label, payload)
    assert answers.read_bytes() == before
    assert _answer(base, sid, image, "fake")[0] == 409  # still refused after the rest

    # only the session's images, by opaque id, as PNG without any text chunk; the truth stays server side
    status, png = _request(f"{base}/img/{image}?session={sid}")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, k = set(), 8
    while k < len(png):
        length = int.from_bytes(png[k:k + 4], "big")
        chunks.add(png[k + 4:k + 8].decode())
        k += 12 + length
    assert chunks == {"IHDR", "IDAT", "IEND"}
    assert re.fullmatch(r"[0-9a-f]{16}", image)
    for path in (f"/img/{image}", f"/img/{image}?session=nope", f"/img/{other}?session={sid}",
                 f"/img/../{H.STUDY}?session={sid}", f"/{H.STUDY}", f"/images/{image}.png", f"/{H.ANSWERS}"):
        status, payload = _request(base + path)
        assert status == 404, (path, status)
    status, state = _request(f"{base}/api/next?session={sid}")
    assert status == 200 and set(state) == {"image", "k", "n"} and state["k"] == 2
    page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    assert page == H.PAGE and not any(i in page for i in truth)  # a static page: it knows nothing of the study


def test_concurrent_evaluators_are_all_stored_and_never_mixed(served):
    base, folder, truth = served
    sessions = [_request(base + "/api/session", {})[1]["session"] for _ in range(2)]
    said = {sessions[0]: "real", sessions[1]: "fake"}
    codes: dict[str, list[int]] = {s: [] for s in sessions}
    start = threading.Barrier(8)

    def evaluator(sid: str) -> None:
        start.wait()
        for image in truth:  # four threads per session race on every image: one answer each wins
            codes[sid].append(_answer(base, sid, image, said[sid])[0])

    threads = [threading.Thread(target=evaluator, args=(s,)) for s in sessions for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = [json.loads(line) for line in (folder / H.ANSWERS).read_text().splitlines()]
    assert len(rows) == 2 * len(truth)
    for sid in sessions:
        mine = [r for r in rows if r["session"] == sid]
        assert sorted(r["image"] for r in mine) == sorted(truth)
        assert {r["answer"] for r in mine} == {said[sid]}
        assert sorted(codes[sid]).count(200) == len(truth) and set(codes[sid]) == {200, 409}
    # what the server held is what a restart reads back
    again = H.Study(folder)
    assert {s: {i: a["answer"] for i, a in again.answers[s].items()} for s in sessions} == \
        {s: {i: said[s] for i in truth} for s in sessions}
    scores = H.score(folder)
    assert scores["hype_inf"] == pytest.approx(0.5) and scores["n_evaluators"] == 2 and scores["n_complete"] == 2
    assert scores["per_evaluator"][sessions[0]]["fake_error"] == 1.0  # all real: every fake judged real
    assert scores["per_evaluator"][sessions[1]]["real_error"] == 1.0


def test_a_write_cut_short_is_dropped_and_the_rest_kept(tmp_path):
    folder = tmp_path / "s"
    _make_study(folder)
    study = H.Study(folder)
    sid = study.new_session()
    first = study.state(sid)["image"]
    study.answer(sid, first, "fake", 800)
    with open(folder / H.ANSWERS, "ab") as f:  # a crash in the middle of the next append
        f.write(b'{"session": "' + sid.encode() + b'", "ima')
    again = H.Study(folder)
    assert list(again.answers[sid]) == [first] and again.state(sid)["k"] == 2
    assert (folder / H.ANSWERS).read_bytes().endswith(b"}\n")
    again.answer(sid, again.state(sid)["image"], "real", 900)
    assert len(H.read_lines(folder / H.ANSWERS)) == 2


def _selected(root: Path, sha: str) -> None:
    d = root / "models" / "mlp" / "selected"
    d.mkdir(parents=True, exist_ok=True)
    (d / "selection.json").write_text(json.dumps({"best_sha256": sha}))


def test_a_study_is_reused_for_its_checkpoint_and_refused_for_another(project, capsys):
    from flows.__main__ import main
    from tasks.layout import Layout

    layout = Layout(project)
    assert main(["human-eval", "--variant", "mlp", "--port", "0", "--quiet"]) == 2
    assert "python -m flows select --variant mlp" in capsys.readouterr().err
    assert main(["human-eval", "--variant", "mlp", "--score", "--quiet"]) == 2
    assert "no study in" in capsys.readouterr().err

    record = _make_study(H.study_dir(layout, "mlp"), sha="ab" * 32)
    _selected(project, "ab" * 32)
    assert H.open_study(layout, "mlp", None, None, 0) == record  # the same study: no new images
    assert H.open_study(layout, "mlp", 10, 5, 0) == record
    with pytest.raises(H.HumanEvalError, match="has --n 10; --n 20 needs a new study"):
        H.open_study(layout, "mlp", 20, None, 0)
    _selected(project, "cd" * 32)  # selection picked another checkpoint since
    assert main(["human-eval", "--variant", "mlp", "--port", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shows checkpoint abababababab" in err and "now cdcdcdcdcdcd" in err and "--score" in err, err
    assert main(["human-eval", "--variant", "wgan", "--quiet"]) == 2
    assert "not in train.variants" in capsys.readouterr().err


def test_a_port_in_use_is_refused_with_one_message(project):
    import socket

    _selected(project, "ab" * 32)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = cli("human-eval", "--variant", "mlp", "--port", str(port), cwd=project, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: port {port} on 127.0.0.1 is in use" in proc.stderr and "Traceback" not in proc.stderr
    assert not (project / "human_eval" / "mlp" / H.STUDY).exists()


# -- a real browser -------------------------------------------------------------------------------

def _answer_in_browser(page, base: str, truth: dict[str, str], reload_at: int = 4, home_at: int = 7,
                       key_at: tuple[int, ...] = (2, 5), screenshot: Path | None = None) -> dict[str, str]:
    """Answer every image of a fresh session: the truth for real images and for every other
    fake, "real" (deceived) for the other fakes, and "fake" for the third real image.  Answers
    ``key_at`` by the R / F keys, the rest by clicks; reloads the page before answer ``reload_at``
    and opens the bare address (the session from localStorage) before ``home_at``.  Returns
    {image id: answer given}."""
    page.goto(base + "/")
    n = len(truth)
    given: dict[str, str] = {}
    session = None
    fakes = reals = 0
    for k in range(1, n + 1):
        if k == reload_at:
            page.reload()
        if k == home_at:
            page.goto(base + "/")
        expect(page.locator("#progress")).to_have_text(f"Image {k} of {n}")
        expect(page.locator("#real")).to_be_enabled()  # the image has loaded
        src = page.locator("#img").get_attribute("src")
        m = re.fullmatch(r"/img/([0-9a-f]+)\?session=(.+)", src)
        assert m, src
        image, sid = m.group(1), m.group(2)
        assert session in (None, sid), "a reload started a new session"
        session = sid
        assert f"session={sid}" in page.url
        if truth[image] == "fake":
            answer = "fake" if fakes % 2 == 0 else "real"
            fakes += 1
        else:
            reals += 1
            answer = "fake" if reals == 3 else "real"
        if screenshot is not None and k == 3:
            page.screenshot(path=str(screenshot))
        if k in key_at:
            page.keyboard.press("R" if answer == "real" else "F")
        else:
            page.click(f"#{answer}")
        given[image] = answer
    wrong = sum(given[i] != truth[i] for i in truth)
    expect(page.locator("#score")).to_contain_text(f"You judged {n - wrong} of {n} images right")
    return given


def _expected(truth: dict[str, str], given: dict[str, str]) -> dict[str, float]:
    fake = [i for i in truth if truth[i] == "fake"]
    real = [i for i in truth if truth[i] == "real"]
    return {"hype_inf": sum(given[i] != truth[i] for i in truth) / len(truth),
            "fake_error": sum(given[i] == "real" for i in fake) / len(fake),
            "real_error": sum(given[i] == "fake" for i in real) / len(real)}


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)


@pytest.mark.slow
@needs_browser
def test_browser_answers_by_click_and_key_survive_reloads_and_give_the_known_hype(served):
    assert CHROMIUM and sync_playwright, "needs Debian's chromium and playwright (pip install -e .[test])"
    base, folder, truth = served
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            given = _answer_in_browser(page, base, truth)
        finally:
            browser.close()
    assert not errors, errors
    rows = [json.loads(line) for line in (folder / H.ANSWERS).read_text().splitlines()]
    assert len(rows) == len(truth) and len({r["session"] for r in rows}) == 1  # one session across the reloads
    assert {r["image"]: r["answer"] for r in rows} == given
    assert all(0 <= r["response_ms"] < 60_000 for r in rows)
    expected = _expected(truth, given)
    assert expected == {"hype_inf": 0.3, "fake_error": 0.4, "real_error": 0.2}  # 2 of 5 fakes, 1 of 5 reals
    scores = H.score(folder)
    for k, v in expected.items():
        assert scores[k] == pytest.approx(v, abs=1e-12), k


# -- end to end -----------------------------------------------------------------------------------

ONE = {**TINY, "train": {**TINY["train"], "parallel": 1, "variants": {"mlp": TINY["train"]["variants"]["mlp"]}},
       "tracking": {**TINY["tracking"], "system_metrics": False, "registered_model": None}}


@pytest.mark.slow
@needs_browser
def test_human_eval_end_to_end_after_a_pipeline_run(tmp_path, isolated_stores):
    assert CHROMIUM and sync_playwright, "needs Debian's chromium and playwright (pip install -e .[test])"
    from mlflow.tracking import MlflowClient

    proj = copy_project(tmp_path / "proj", ONE)
    uri = f"sqlite:///{isolated_stores / 'human.db'}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    log = tmp_path / "human-eval.log"
    env = {**os.environ, "PATH": venv_path(), "PYTHONPATH": str(proj), "MLFLOW_TRACKING_URI": uri}
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "flows", "human-eval", "--variant", "mlp", "--n", "10",
                                   "--port", "0"], cwd=proj, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        t0 = time.time()
        while not (m := re.search(r"open (http://127\.0\.0\.1:\d+)/", log.read_text())):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.time() - t0 < 120, "human-eval did not start within 120 s:\n" + log.read_text()[-3000:]
            time.sleep(0.2)
        base = m.group(1)
        study = json.loads((proj / "human_eval" / "mlp" / H.STUDY).read_text())
        truth = {im["id"]: im["truth"] for im in study["images"]}
        assert sorted(truth.values()) == ["fake"] * 5 + ["real"] * 5
        with sync_playwright() as p:
            browser = _browser(p)
            try:
                page = browser.new_page(viewport={"width": 760, "height": 620})
                given = _answer_in_browser(page, base, truth, screenshot=tmp_path / "human_eval.png")
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # as a service manager stops it: scored on the way out
        rc = server.wait(60)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert (tmp_path / "human_eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    expected = _expected(truth, given)
    assert expected["hype_inf"] == 0.3
    assert "HYPE∞ 0.300" in text, text[-2000:]
    scores = json.loads((proj / "metrics" / "human" / "mlp.json").read_text())
    selection = json.loads((proj / "models" / "mlp" / "selected" / "selection.json").read_text())
    assert scores["checkpoint_sha256"] == study["checkpoint_sha256"] == selection["best_sha256"]
    assert (scores["n_answers"], scores["n_evaluators"], scores["n_complete"]) == (10, 1, 1)
    assert (scores["study"]["n_images"], scores["study"]["seed"], scores["step"]) == (10, 0, study["step"])
    for k, v in expected.items():
        assert scores[k] == pytest.approx(v, abs=1e-12), k
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("variant") == "mlp"]
    assert run.data.tags["checkpoint_sha256"] == selection["best_sha256"]
    assert "mlflow.parentRunId" in run.data.tags
    for k, v in expected.items():
        assert run.data.metrics[f"human/{k}"] == pytest.approx(v, abs=1e-12), k
    lo, hi = scores["hype_inf_ci"]
    assert run.data.metrics["human/hype_inf_ci_low"] == pytest.approx(lo)
    assert run.data.metrics["human/hype_inf_ci_high"] == pytest.approx(hi)
    assert "human/mlp.json" in {a.path for a in client.list_artifacts(run.info.run_id, "human")}

    # scoring without serving gives the same numbers from the stored answers
    again = cli("human-eval", "--variant", "mlp", "--score", cwd=proj, env={"MLFLOW_TRACKING_URI": uri},
                timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "HYPE∞ 0.300" in again.stdout and f"run {run.info.run_id}" in again.stdout, again.stdout
    rescored = json.loads((proj / "metrics" / "human" / "mlp.json").read_text())
    assert {k: rescored[k] for k in ("hype_inf", "hype_inf_ci", "fake_error", "real_error")} == \
        {k: scores[k] for k in ("hype_inf", "hype_inf_ci", "fake_error", "real_error")}
