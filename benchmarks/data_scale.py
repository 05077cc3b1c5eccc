"""Prepare at the scale of real data sets: wall time and peak memory of ``python -m flows prepare``
on generated folders of RGB JPEGs in 10 class folders (``benchmarks/folder_data.py``), against
the data size, for this code and (``--before COMMIT``) an earlier commit, side by side in one run.

    python -m benchmarks.data_scale --sizes 5000 50000 200000 --px 32 64 --before 55aac76 \\
        --out reports/benchmarks/data_scale.json

Each prepare runs in a fresh project folder, alone on the machine, under ``/usr/bin/time -v``:
"peak RSS" is the prepare process's own maximum resident set (the decoding workers, separate
processes, are reported apart), beside that of a bare ``python -c "import torch"`` measured the
same way.  A run that passes ``--timeout`` seconds is stopped and reported as not finished."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _time_v(cmd: list[str], cwd: Path, timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``: wall time and the process's peak RSS (the kernel's
    own maximum); a run past ``timeout`` is stopped (its whole process group) and reported with
    the largest RSS seen by sampling every 0.2 s."""
    import signal
    import threading

    import psutil

    t0 = time.time()
    proc = subprocess.Popen(["/usr/bin/time", "-v", *cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})}, start_new_session=True)
    sampled = {"rss": 0, "workers": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            try:
                kids = psutil.Process(proc.pid).children()
                main = kids[0] if kids else None
                if main is not None:
                    sampled["rss"] = max(sampled["rss"], main.memory_info().rss)
                    workers = [c.memory_info().rss for c in main.children(recursive=True)]
                    sampled["workers"] = max([sampled["workers"], *workers])
            except (psutil.Error, IndexError):
                pass
    threading.Thread(target=sample, daemon=True).start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        done.set()
        return {"finished": False, "wall_s": round(time.time() - t0, 1), "peak_rss_sampled_bytes": sampled["rss"]}
    done.set()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024
    return {"finished": proc.returncode == 0, "rc": proc.returncode, "wall_s": round(time.time() - t0, 1),
            "peak_rss_bytes": rss, "worker_peak_rss_sampled_bytes": sampled["workers"],
            "tail": err[-1500:] if proc.returncode else ""}


def bare_torch_rss() -> int:
    return _time_v([sys.executable, "-c", "import torch"], ROOT, 120)["peak_rss_bytes"]


def run_prepare(code: Path, folder: Path, old: bool, timeout: float, train_steps: int = 0) -> dict:
    """``flows prepare`` of ``code`` (a checkout) on ``folder`` in a fresh project, each with its
    defaults (the old code: 8 classifier epochs; this code: 36,000 classifier samples); then, with
    ``train_steps``, ``flows train`` of a DCGAN for that many steps on the prepared data."""
    with tempfile.TemporaryDirectory(prefix="scale-", dir=Path(folder).parent) as proj:
        params = {"seed": 0, "prepare": {"dataset": "folder", "root": str(folder)},
                  "train": {"steps": max(train_steps, 1), "checkpoint_every": max(train_steps, 1),
                            "variants": {"dcgan": {}}}, "tracking": {"enabled": False}}
        Path(proj, "params.yaml").write_text(yaml.safe_dump(params))
        env = {"PYTHONPATH": str(code), "PREFECT_HOME": str(Path(proj) / ".prefect")}
        out = _time_v([sys.executable, "-m", "flows", "prepare", "--quiet"], Path(proj), timeout, env)
        if train_steps and out["finished"]:
            t = _time_v([sys.executable, "-m", "flows", "train", "--variant", "dcgan", "--quiet"], Path(proj), timeout,
                        env)
            out["train"] = {"steps": train_steps, **{k: v for k, v in t.items() if k != "tail"}}
        manifest = Path(proj, "data/prepared/manifest.json")
        if manifest.exists():
            m = json.loads(manifest.read_text())
            ex = m.get("extractor") or {}
            out.update({"content_hash": m["content_hash"], "classifier_accuracy": ex.get("heldout_accuracy"),
                        "independent_accuracy": (m.get("independent") or {}).get("heldout_accuracy"),
                        "prepared_bytes": sum(f.stat().st_size for f in Path(proj, "data/prepared").iterdir())})
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    p.add_argument("--px", type=int, nargs="+", default=[32])
    p.add_argument("--before", default=None, help="an earlier commit to measure side by side")
    p.add_argument("--data", default="/tmp/scale-data", help="where the generated folders are kept")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--before-timeout", type=float, default=1200, help="the earlier commit's limit per prepare")
    p.add_argument("--before-sizes", type=int, nargs="*", default=None,
                   help="sizes (any px) the earlier commit prepares (default: all)")
    p.add_argument("--train-steps", type=int, default=100, help="then train a DCGAN this long on this code's data")
    p.add_argument("--out", default="reports/benchmarks/data_scale.json")
    a = p.parse_args()
    from benchmarks.folder_data import make_folder

    codes = {"this code": ROOT}
    if a.before:
        old = Path(tempfile.mkdtemp(prefix="before-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(old), a.before], cwd=ROOT, check=True,
                       capture_output=True)
        codes[f"before ({a.before})"] = old
    rows = []
    try:
        for px in a.px:
            for n in a.sizes:
                folder = Path(a.data) / f"rgb{px}_{n}"
                if not folder.exists():
                    t0 = time.time()
                    make_folder(folder, n, size=px)
                    print(f"generated {folder} in {time.time() - t0:.0f} s", flush=True)
                pixels = n * 3 * px * px
                for label, code in codes.items():
                    old = label != "this code"
                    if old and a.before_sizes is not None and n not in a.before_sizes:
                        continue
                    r = run_prepare(code, folder, old, a.before_timeout if old else a.timeout,
                                    0 if old else a.train_steps)
                    rows.append({"code": label, "n": n, "px": px, "pixel_bytes": pixels, **r})
                    print(json.dumps(rows[-1]), flush=True)
        out = {"bare_torch_rss_bytes": bare_torch_rss(), "cpus": os.cpu_count(), "rows": rows,
               "command": " ".join(sys.argv)}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
        print(f"written: {a.out}")
    finally:
        if a.before:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
