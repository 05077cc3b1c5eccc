"""Every stage on a real-sized folder: wall time and peak memory of each stage command
(``python -m flows prepare``, ``train``, ``select``, ``evaluate``, ``export``, as ``dvc repro``
runs them) on a generated folder of RGB JPEGs in 10 class folders, then ``flows run`` on the
finished stages (which logs them to MLflow and has nothing else to do).

    python -m benchmarks.stage_times --n 50000 --px 32 --steps 2000 --out reports/benchmarks/stage_times.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from benchmarks.data_scale import _time_v

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--px", type=int, default=32)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--variants", nargs="+", default=["dcgan", "cgan"])
    p.add_argument("--data", default="/tmp/scale-data")
    p.add_argument("--project", default="/tmp/scale-run")
    p.add_argument("--out", default="reports/benchmarks/stage_times.json")
    a = p.parse_args()
    from benchmarks.folder_data import make_folder

    folder = Path(a.data) / f"rgb{a.px}_{a.n}"
    if not folder.exists():
        make_folder(folder, a.n, size=a.px)
    proj = Path(a.project)
    proj.mkdir(parents=True, exist_ok=True)
    variants = {v: {"generator": {"arch": "dcgan", "width": 32}, "discriminator": {"arch": "dcgan", "width": 32}}
                for v in a.variants}
    params = {"seed": 0, "prepare": {"dataset": "folder", "root": str(folder)},
              "train": {"steps": a.steps, "checkpoint_every": 500, "variants": variants}}
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {"PYTHONPATH": str(ROOT), "PREFECT_HOME": str(proj / ".prefect")}
    rows = []

    def run(*args: str) -> dict:
        r = _time_v([sys.executable, "-m", "flows", *args, "--quiet"], proj, 7200, env)
        rows.append({"command": "flows " + " ".join(args), **{k: v for k, v in r.items() if k != "tail"}})
        print(json.dumps(rows[-1]), flush=True)
        if not r["finished"]:
            raise SystemExit(f"flows {' '.join(args)} failed:\n{r.get('tail', '')}")
        return r

    run("prepare")
    for v in a.variants:
        for stage in ("train", "select", "evaluate", "export"):
            run(stage, "--variant", v)
    run("run")  # everything up to date: logs it all to MLflow
    metrics = {v: json.loads((proj / "metrics" / f"{v}.json").read_text()) for v in a.variants}
    out = {"n": a.n, "px": a.px, "steps": a.steps, "rows": rows, "command": " ".join(sys.argv),
           "metrics": {v: {k: m.get(k) for k in ("fid", "extractor", "extractor_accuracy", "confident_fraction",
                                                 "independent_confident_fraction", "label_agreement", "is_mean",
                                                 "n_samples", "step")} for v, m in metrics.items()},
           "grids": [str(proj / "samples" / v / "grid.png") for v in a.variants]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"written: {a.out}")


if __name__ == "__main__":
    main()
