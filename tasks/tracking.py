"""MLflow: one parent run per pipeline run, one child run per variant.

All logging goes through ``MlflowClient`` with explicit run ids, never the thread-local active
run, because stages run in Prefect's worker threads.  Metric names are hierarchical
(``loss/D``, ``D/real``, ``grad_norm/G``, ``select/fid``, ``fid``) and logged with ``step=``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_models.checkpoint import sha256_file

from .common import code_version, file_lock, resolved_threads
from .config import Params


log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


STATE_TAG = "pipeline_state"  # on a parent run: the hash of the finished pipeline it logged completely


def tracking_uri(params: Params, root: Path = Path(".")) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else an absolute sqlite file in the project folder
    (absolute so that DVC's temporary experiment folders write to the same store)."""
    if params.tracking.uri:
        return params.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root(root) / 'mlflow.db'}"


def project_root(root: Path = Path(".")) -> Path:
    """``root`` made absolute; inside a DVC temporary experiment copy
    (``<project>/.dvc/tmp/exps/<name>/``, deleted after the experiment) the outer project."""
    root = Path(root).resolve()
    parts = root.parts
    for i in range(len(parts) - 3):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


@contextlib.contextmanager
def _store_init_lock(uri: str):
    """Serialise the first use of a sqlite store across processes: two runs creating the same new
    database at once race in MLflow's schema migration ("table ... already exists")."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    with file_lock(db.with_name(db.name + ".init-lock")):
        yield


def _experiment_id(client, name: str, uri: str) -> str:
    """The experiment's id, creating it (next to a sqlite store, artifacts in mlartifacts/).  Two
    runs may create it at once: the loser of that race reads the winner's."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _unreachable(uri: str, e: Exception) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:300]
    return (f"cannot use the MLflow tracking store {uri!r}: {type(e).__name__}: {first}\n"
            "Start the server or fix MLFLOW_TRACKING_URI / tracking.uri; to run without tracking use "
            "--set tracking.enabled=false")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return out


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "scipy", "prefect", "mlflow", "dvc"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def reproducibility_tags(params: Params, root: Path = Path(".")) -> dict[str, str]:
    """What a run needs to be redone exactly (``flows rerun``); the data hash is added once the
    prepare stage has run, checkpoint hashes by the stages that write them."""
    lock = Path(root) / "dvc.lock"
    return {"code_version": code_version(), "seed": str(params.seed),
            "threads": str(resolved_threads(params.train.threads, params.train.parallel)),
            "dvc_lock_sha256": sha256_file(lock) if lock.exists() else "none",
            "packages": json.dumps(package_versions())}


@dataclass
class Tracker:
    """Run ids of one pipeline run; ``None`` client means tracking is off."""

    uri: str
    experiment_id: str
    parent_run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)

    @property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.uri)

    @staticmethod
    def check(params: Params, root: Path = Path(".")) -> str:
        """Reach the tracking store now (before any work); raises TrackingError naming the fix."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(params, root)
        try:
            with _store_init_lock(uri):  # MLflow creates a new sqlite store's tables on first use
                MlflowClient(uri).search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(_unreachable(uri, e)) from None
        return uri

    @classmethod
    def start(cls, params: Params, params_file: str, overrides: list[str], root: Path = Path(".")) -> "Tracker":
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(params, root)
        client = MlflowClient(uri)
        try:
            with _store_init_lock(uri):
                exp_id = _experiment_id(client, params.tracking.experiment, uri)
        except Exception as e:  # connection refused, bad URI, locked database, ...
            raise TrackingError(_unreachable(uri, e)) from None
        repro = reproducibility_tags(params, root)
        tags = {**repro, "params_file": params_file,
                "overrides": json.dumps(overrides), "variants": ",".join(params.variant_names),
                "mlflow.runName": f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"}
        parent = client.create_run(exp_id, tags=tags)
        tracker = cls(uri, exp_id, parent.info.run_id)
        from mlflow.entities import Param

        flat = _flatten({k: v for k, v in params.to_dict().items() if k not in ("train",)})
        flat.update(_flatten({k: v for k, v in params.to_dict()["train"].items() if k != "variants"}, "train."))
        tracker._log_params(tracker.parent_run_id, flat, Param)
        client.log_text(tracker.parent_run_id, json.dumps(params.to_dict(), indent=2), "resolved_params.json")
        for v in params.variant_names:
            run = client.create_run(exp_id, tags={
                **repro, "mlflow.parentRunId": tracker.parent_run_id, "mlflow.runName": v, "variant": v})
            tracker.child_run_ids[v] = run.info.run_id
            vflat = _flatten({"variant": v, "seed": params.seed, "steps": params.variant_steps(v),
                              "spec": params.variant_spec(v),
                              "train": {k: val for k, val in params.to_dict()["train"].items()
                                        if k != "variants"}})
            tracker._log_params(run.info.run_id, vflat, Param)
        return tracker

    def _log_params(self, run_id: str, flat: dict[str, str], Param) -> None:
        items = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])

    # -- per-variant logging: a store that fails mid-run does not fail the stages ----------------
    offline: bool = False

    def _guard(self, what: str, fn, *args, **kwargs):
        if self.offline:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            self.offline = True
            log.warning("MLflow is unreachable (%s while %s: %s). The pipeline goes on; everything stays on "
                        "disk. To log it once the store is back, rerun the same command: finished stages are "
                        "skipped and their results are logged from their files.", type(e).__name__, what,
                        (str(e).splitlines() or [""])[0][:200])
            return None

    MAX_BATCH = 900  # MLflow accepts up to 1000 metrics per log_batch

    def send_metrics(self, variant: str, items: list) -> None:
        """The one path every metric takes to the store (``mlflow.entities.Metric`` items), in
        batches; after a failure nothing more is sent (each try could wait for a timeout)."""
        for i in range(0, len(items), self.MAX_BATCH):
            self._guard("logging metrics", self.client.log_batch, self.child_run_ids[variant],
                        metrics=items[i:i + self.MAX_BATCH])

    def log_history(self, variant: str, rows: list[dict[str, Any]]) -> None:
        """Per-step statistics from a history file (what was not logged live)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.send_metrics(variant, [Metric(k, float(v), ts, int(r["step"])) for r in rows for k, v in r.items()
                                    if k != "step"])

    def log_metrics(self, variant: str, metrics: dict[str, float], step: int = 0, prefix: str = "") -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.send_metrics(variant, [Metric(prefix + k, float(v), ts, step) for k, v in metrics.items()
                                    if isinstance(v, (int, float)) and not isinstance(v, bool)])

    def log_data(self, prepared: dict[str, Any]) -> None:
        for run_id in [self.parent_run_id, *self.child_run_ids.values()]:
            self._guard("tagging the data", self.client.set_tag, run_id, "data_hash", prepared["content_hash"])
            self._guard("tagging the data", self.client.set_tag, run_id, "dataset", prepared["dataset"])

    def metric_logger(self, variant: str, interval_s: float = 1.0) -> "LiveMetrics":
        """A callback for the training loop; call ``flush()`` when training returns."""
        return LiveMetrics(self, variant, interval_s)

    def log_artifact(self, variant: str | None, path: Path, artifact_path: str | None = None) -> None:
        run_id = self.parent_run_id if variant is None else self.child_run_ids[variant]
        if Path(path).is_dir():
            self._guard("logging artifacts", self.client.log_artifacts, run_id, str(path), artifact_path)
        elif Path(path).exists():
            self._guard("logging an artifact", self.client.log_artifact, run_id, str(path), artifact_path)

    def set_tag(self, variant: str | None, key: str, value: str) -> None:
        run_id = self.parent_run_id if variant is None else self.child_run_ids[variant]
        self._guard("setting a tag", self.client.set_tag, run_id, key, value)

    def mark_logged(self, state: str) -> None:
        """Tag the parent run with the finished pipeline's state (``tasks.stages.pipeline_state``):
        the store's own record that this state is fully logged.  Set only when nothing failed."""
        self.set_tag(None, STATE_TAG, state)

    @staticmethod
    def logged_run(params: Params, state: str, root: Path = Path(".")) -> dict[str, Any] | None:
        """The finished pipeline run in the tracking store that logged ``state`` with all its
        variant runs, or None (a new or emptied store, a deleted run).  Raises TrackingError when
        the store cannot be reached."""
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(params, root)
        try:
            with _store_init_lock(uri):
                client = MlflowClient(uri)
                exp = client.get_experiment_by_name(params.tracking.experiment)
                if exp is None:
                    return None
                found = client.search_runs([exp.experiment_id], max_results=1, filter_string=(
                    f"tags.{STATE_TAG} = '{state}' and attributes.status = 'FINISHED'"))
                if not found:
                    return None
                parent = found[0].info.run_id
                children = client.search_runs([exp.experiment_id],
                                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")
        except Exception as e:
            raise TrackingError(_unreachable(uri, e)) from None
        child_ids = {r.data.tags.get("variant"): r.info.run_id for r in children if r.info.status == "FINISHED"}
        if set(child_ids) != set(params.variant_names):
            return None
        return {"uri": uri, "parent_run_id": parent, "child_run_ids": child_ids, "complete": True}

    def finish(self, variant: str | None, ok: bool, reason: str | None = None) -> None:
        run_id = self.parent_run_id if variant is None else self.child_run_ids[variant]
        if reason:
            self._guard("recording the failure", self.client.set_tag, run_id, "failure_reason", reason[:5000])
        self._guard("closing the run", self.client.set_terminated, run_id, "FINISHED" if ok else "FAILED")


class LiveMetrics:
    """Collects the training loop's per-step statistics and hands them to ``Tracker.send_metrics``
    at most once a second, so tracking costs the loop next to nothing.  A store that fails
    mid-run does not stop training: the statistics stay in the stage's history.jsonl, and a rerun
    logs them from there."""

    def __init__(self, tracker: Tracker, variant: str, interval_s: float = 1.0):
        self.tracker, self.variant, self.interval_s = tracker, variant, interval_s
        self.pending: list = []
        self.last = time.monotonic()

    def __call__(self, step: int, stats: dict[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.pending.extend(Metric(k, float(v), ts, step) for k, v in stats.items())
        if time.monotonic() - self.last >= self.interval_s or len(self.pending) >= Tracker.MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        items, self.pending = self.pending, []
        self.tracker.send_metrics(self.variant, items)
        self.last = time.monotonic()


# -- model registry ---------------------------------------------------------------------------------
CHAMPION = "champion"


def log_generator_model(client, run_id: str, checkpoint: Path, z_dim: int) -> str:
    """Log the generator in ``checkpoint`` to ``run_id`` as a pyfunc model from code (see
    tasks/mlflow_generator.py); returns its ``runs:/`` URI."""
    import tempfile

    import mlflow.pyfunc
    from importlib.metadata import version

    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # predict() takes plain arrays on purpose; MLflow suggests type hints for its validation
        warnings.filterwarnings("ignore", message=".*type hints.*")
        path = Path(tmp) / "generator"
        mlflow.pyfunc.save_model(
            path, python_model=str(here / "mlflow_generator.py"), artifacts={"checkpoint": str(checkpoint)},
            code_paths=[str(here.parent / "gan_models")], metadata={"z_dim": z_dim},
            pip_requirements=[f"torch=={version('torch')}", f"mlflow=={version('mlflow')}", "numpy", "scipy",
                              "pillow", "matplotlib"])
        client.log_artifacts(run_id, str(path), "generator")
    return f"runs:/{run_id}/generator"


def promote_if_better(client, name: str, version: str, basis: dict[str, str], rank: list[float]) -> str:
    """Move the alias ``champion`` of registered model ``name`` to ``version`` when there is no
    champion yet, or when ``rank`` (smaller is better) beats the champion's on the same basis
    (selection metric, feature extractor, data).  Returns what happened, in words."""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        current = None
    if current is not None and str(current.version) != str(version):
        if json.loads(current.tags.get("selection_basis", "{}")) != basis:
            return (f"{name} v{version} registered; champion stays v{current.version}: it was selected on other "
                    "data or another metric, so the two do not compare (use another tracking.registered_model)")
        best = json.loads(current.tags.get("selection_rank", "null"))
        if best is not None and list(rank) >= list(best):
            return f"{name} v{version} registered; champion stays v{current.version} ({best} beats {list(rank)})"
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return f"{name} v{version} registered and is the champion"


def register_best(tracker: Tracker, name: str, selections: dict[str, dict[str, Any]], kind: str,
                  data_hash: str) -> str | None:
    """Register the best generator of this pipeline run (lowest selection rank over the variants
    that finished selection) and promote it when it beats the champion."""
    import torch  # noqa: F401  (the checkpoint loader below needs it)

    from gan_models.checkpoint import load_checkpoint

    from .scoring import sort_key

    if not selections:
        return None
    ranked = {v: list(sort_key(s["metric"], kind, s["best_scores"])) for v, s in selections.items()}
    best = min(ranked, key=lambda v: ranked[v])
    sel = selections[best]
    ckpt_path = Path(sel["best_checkpoint"])
    z_dim = int(load_checkpoint(ckpt_path)["spec"]["z_dim"])

    def go() -> str:
        client = tracker.client
        run_id = tracker.child_run_ids[best]
        source = log_generator_model(client, run_id, ckpt_path, z_dim)
        try:
            client.create_registered_model(name)
        except Exception:
            pass  # it exists already
        basis = {"metric": sel["metric"], "extractor": sel.get("extractor", ""), "data_hash": data_hash}
        mv = client.create_model_version(name, source, run_id=run_id, tags={
            "variant": best, "selection_basis": json.dumps(basis), "selection_rank": json.dumps(ranked[best]),
            "checkpoint_sha256": sha256_file(ckpt_path), "selected_step": str(sel["best_step"])})
        return promote_if_better(client, name, mv.version, basis, ranked[best])

    return tracker._guard("registering the best generator", go)
