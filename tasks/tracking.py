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
        if exp.tags.get(EXPERIMENT_KIND) is None:  # made by an older version, or by hand
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return exp.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    except Exception:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# Ours are model-training experiments: the tag says so to the API, to `search_experiments` and to
# the MLflow UIs that choose an experiment's view from it.  MLflow 3.17's UI instead chooses from a
# workflow switch (the URL's `workflowType`, else the browser's last choice, else GenAI: traces,
# judges), so the links we print carry it; see experiment_url.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


UI_BASE = "http://127.0.0.1:5000"  # where `python -m flows ui` serves by default


def experiment_url(base: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment, opened in its model-training view (the runs table)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


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


def plugin_records() -> list[dict[str, str | None]]:
    """Every loaded plugin: name, how it was loaded, its package and version, its code's hash."""
    from gan_models.plugins import loaded

    return [{"name": p.name, "target": p.target, "origin": p.origin, "package": p.distribution,
             "version": p.version, "code_sha256": p.code_sha256(),
             "provides": ",".join(f"{k}:{n}" for k, n in p.provides)} for p in loaded()]


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags, so the UI's "Source" column shows the commit."""
    version = code_version()
    tags = {"mlflow.source.name": "python -m flows run", "mlflow.source.type": "LOCAL"}
    commit = version.split("+")[0]
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        tags["mlflow.source.git.commit"] = commit
    try:
        import getpass

        tags["mlflow.user"] = getpass.getuser()
    except Exception:  # no user name in a bare container
        pass
    return tags


def reproducibility_tags(params: Params, root: Path = Path(".")) -> dict[str, str]:
    """What a run needs to be redone exactly (``flows rerun``); the data hash is added once the
    prepare stage has run, checkpoint hashes by the stages that write them."""
    lock = Path(root) / "dvc.lock"
    return {"code_version": code_version(), "seed": str(params.seed),
            "threads": str(resolved_threads(params.train.threads, params.train.parallel)),
            "dvc_lock_sha256": sha256_file(lock) if lock.exists() else "none",
            "packages": json.dumps(package_versions()), "plugins": json.dumps(plugin_records()),
            **source_tags()}


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
        """Tag every run with the data hash, and log the prepared data set as the training input
        of the pipeline run and every variant run (the run page's "Datasets", the runs table's
        "Dataset" column; runs on the same data share the digest)."""
        from mlflow.entities import DatasetInput, InputTag

        dataset = mlflow_dataset(prepared)
        for run_id in [self.parent_run_id, *self.child_run_ids.values()]:
            self._guard("tagging the data", self.client.set_tag, run_id, "data_hash", prepared["content_hash"])
            self._guard("tagging the data", self.client.set_tag, run_id, "dataset", prepared["dataset"])
        for run_id in [self.parent_run_id, *self.child_run_ids.values()]:
            self._guard("logging the data set", self.client.log_inputs, run_id, [DatasetInput(
                dataset, tags=[InputTag("mlflow.data.context", "training")])])

    def log_checkpoint_images(self, variant: str, grids: list[tuple[int, Any]], best_step: int | None) -> None:
        """One sample grid per checkpoint, as step-indexed images (the run page slides through
        training); the selected checkpoint's grid again under ``selected_checkpoint``."""
        run_id = self.child_run_ids[variant]
        for step, grid in grids:
            self._guard("logging an image", self.client.log_image, run_id, grid, key="samples", step=int(step))
            if step == best_step:
                self._guard("logging an image", self.client.log_image, run_id, grid, key="selected_checkpoint",
                            step=int(step))

    def system_metrics(self, variant: str, interval_s: float):
        """A started monitor of CPU, memory (and GPU) use logged to the variant's run as
        ``system/*`` metrics; call ``finish()`` on it.  None when it cannot run (no psutil)."""
        if self.offline:
            return None
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop lines

            monitor = SystemMetricsMonitor(self.child_run_ids[variant], sampling_interval=interval_s,
                                           samples_before_logging=1, tracking_uri=self.uri)
            monitor.start()
            return _FinalSample(monitor)
        except Exception as e:
            log.warning("system metrics are not logged: %s: %s", type(e).__name__, e)
            return None

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
        return {"uri": uri, "experiment_id": exp.experiment_id, "parent_run_id": parent,
                "child_run_ids": child_ids, "complete": True}

    def finish(self, variant: str | None, ok: bool, reason: str | None = None) -> None:
        run_id = self.parent_run_id if variant is None else self.child_run_ids[variant]
        if reason:
            self._guard("recording the failure", self.client.set_tag, run_id, "failure_reason", reason[:5000])
        self._guard("closing the run", self.client.set_terminated, run_id, "FINISHED" if ok else "FAILED")


def checkpoint_grids(layout, variant: str, n: int = 64, seed: int = 2024) -> list[tuple[int, Any]]:
    """(step, uint8 image grid) of every checkpoint of ``variant``, from the same noise (image
    data only; a checkpoint that does not load is left out: selection reports it)."""
    import torch

    from gan_models import checkpoint as ck
    from gan_models.images import grid
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint

    d = layout.train_dir(variant)
    out = []
    for entry in ck.read_index(d):
        try:
            c = ck.load_checkpoint(d / entry["file"], entry["sha256"])
            if c["data"]["kind"] != "image" or c["data"].get("task"):
                return []  # 2D points have no grid; a translation G needs input images (export shows them)
            G, z_dim = generator_from_checkpoint(c)
            with torch.no_grad():
                out.append((int(entry["step"]), grid(sample(G, n, z_dim, seed))))
        except (ck.CheckpointError, ValueError, KeyError):
            continue
    return out


def mlflow_dataset(prepared: dict[str, Any]):
    """The prepared data set as an MLflow dataset entity: digest = our content hash (its first
    36 characters, MLflow's column width), source = the prepare stage's folder, schema = the
    arrays' shapes."""
    from mlflow.entities import Dataset

    shape = [-1, *prepared["shape"]]
    schema = {"mlflow_tensorspec": {"features": json.dumps([{"type": "tensor", "tensor-spec": {
        "dtype": "uint8" if prepared["kind"] == "image" else "float32", "shape": shape}}]),  # as stored
        "targets": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}])}}
    profile = {"content_hash": prepared["content_hash"], **{f"num_{k}": v for k, v in prepared["counts"].items()}}
    source = {"uri": str(Path(prepared["path"]).resolve()), "dataset": prepared["dataset"]}
    return Dataset(name=prepared["dataset"], digest=prepared["content_hash"][:36], source_type="local",
                   source=json.dumps(source), schema=json.dumps(schema), profile=json.dumps(profile))


class _FinalSample:
    """MLflow's monitor publishes a sample only after a full interval: one more, at the end, so a
    training run shorter than the interval is measured too."""

    def __init__(self, monitor):
        self.monitor = monitor

    def finish(self) -> None:
        m = self.monitor
        try:
            m._shutdown_event.set()  # stop its sampling thread first: both would touch its buffers
            if m._process is not None:
                m._process.join()
            m.collect_metrics()
            m.publish_metrics(m.aggregate_metrics())
        except Exception as e:  # a view of the run: never fails it
            log.warning("the last system-metrics sample was not logged: %s: %s", type(e).__name__, e)
        m.finish()


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


@contextlib.contextmanager
def _quiet(*loggers: str):
    """MLflow's INFO lines of a model logging ("validating the input example") off for a while."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def log_generator_model(tracker: "Tracker", run_id: str, checkpoint: Path, ckpt: dict[str, Any]) -> tuple[str, str]:
    """Log the generator in ``checkpoint`` as a logged model of ``run_id`` (the run page's
    "Logged models"): a pyfunc model from code (tasks/mlflow_generator.py) with a signature
    (noise (n, z_dim) float32 -> samples, optional ``labels`` param) and an input example, and
    the source of every plugin it may need.  Returns (model URI, model id)."""
    import warnings

    import mlflow
    import numpy as np
    from importlib.metadata import version
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    from gan_models.registry import plugins_using
    from tasks.stages import names_in

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    here = Path(__file__).resolve().parent
    z_dim = int(ckpt["spec"]["z_dim"])
    shape = tuple(int(d) for d in ckpt["data"]["shape"])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, z_dim))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))]),
        params=ParamSchema([ParamSpec("labels", "long", [0], shape=(-1,))]))
    # The plugins this generator's variant uses: their code ships with the model, and loading it
    # imports them (tasks/mlflow_generator.py).
    plugins = plugins_using(names_in(ckpt["spec"]) | {ckpt["variant"]})
    code = [str(here.parent / "gan_models")] + sorted({p.root if len(p.files) > 1 or p.files[0] == "__init__.py"
                                                        else str(Path(p.root) / p.files[0]) for p in plugins if p.files})
    # In the variant run's experiment (Model.log alone would use the process's active experiment).
    model = tracker.client.create_logged_model(tracker.experiment_id, name="generator", source_run_id=run_id,
                                               tags={"variant": ckpt["variant"], "step": str(ckpt["step"])})
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.uri)  # Model.log resolves the store from the global setting
    try:
        with warnings.catch_warnings(), _quiet("mlflow.pyfunc", "mlflow.models"):
            # predict() takes plain arrays on purpose; MLflow suggests type hints for its validation
            warnings.filterwarnings("ignore", message=r"(?s).*type hints", category=UserWarning)
            info = Model.log(
                artifact_path=None, name="generator", flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
                python_model=str(here / "mlflow_generator.py"), artifacts={"checkpoint": str(checkpoint)},
                code_paths=code, signature=signature, input_example=np.zeros((2, z_dim), np.float32),
                model_config={"plugins": [p.target for p in plugins]},
                metadata={"z_dim": z_dim, "variant": ckpt["variant"], "step": int(ckpt["step"])},
                pip_requirements=[f"torch=={version('torch')}", f"mlflow=={version('mlflow')}", "numpy", "scipy",
                                  "pillow", "matplotlib"])
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri, info.model_id


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
    ckpt = load_checkpoint(ckpt_path)

    def go() -> str:
        client = tracker.client
        run_id = tracker.child_run_ids[best]
        source, model_id = log_generator_model(tracker, run_id, ckpt_path, ckpt)
        try:
            client.create_registered_model(name)
        except Exception:
            pass  # it exists already
        basis = {"metric": sel["metric"], "extractor": sel.get("extractor", ""), "data_hash": data_hash}
        mv = client.create_model_version(name, source, run_id=run_id, model_id=model_id, tags={
            "variant": best, "selection_basis": json.dumps(basis), "selection_rank": json.dumps(ranked[best]),
            "checkpoint_sha256": sha256_file(ckpt_path), "selected_step": str(sel["best_step"])})
        return promote_if_better(client, name, mv.version, basis, ranked[best])

    return tracker._guard("registering the best generator", go)


def variant_run(uri: str, experiment: str, variant: str, checkpoint_sha256: str):
    """The newest MLflow run of ``experiment`` tagged ``variant == variant`` and
    ``checkpoint_sha256 == checkpoint_sha256`` (the variant run of the pipeline run that selected
    that checkpoint), or None; TrackingError when the store cannot be read."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    try:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        # the hash is hex (safe in a filter); the variant name is compared here, not quoted into one
        runs = client.search_runs([exp.experiment_id], f"tags.checkpoint_sha256 = '{checkpoint_sha256}'",
                                  order_by=["attributes.start_time DESC"], max_results=100)
    except Exception as e:
        raise TrackingError(_unreachable(uri, e)) from None
    return next((r for r in runs if r.data.tags.get("variant") == variant), None)


def log_to_run(uri: str, run_id: str, metrics: dict[str, float], step: int, artifact: Path | None = None,
               artifact_path: str | None = None) -> None:
    """Log ``metrics`` at ``step`` (and one artifact file) to an existing run, finished or not."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ts = int(time.time() * 1000)
    try:
        client.log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])
        if artifact is not None:
            client.log_artifact(run_id, str(artifact), artifact_path)
    except Exception as e:
        raise TrackingError(_unreachable(uri, e)) from None
