"""MLflow: one parent run per pipeline run, one child run per variant; in a study (``seeds``) the
variant run holds the aggregates over seeds (``fid_mean``, ``fid_ci_low``, ..., ``n``) and one
child run per seed, so the UI compares variants by their distributions and still shows each seed.

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

from gan_models.files import sha256_file

from ..config import Params
from ..records import code_version
from ..runtime import file_lock, resolve_device, resolved_threads

log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


STATE_TAG = "pipeline_state"  # on a parent run: the hash of the finished pipeline it logged completely


def client(uri: str):
    """An MLflow client of ``uri`` that gives up on an unreachable server after one try of 10 s
    (MLflow's defaults retry for minutes); the environment can still set its own."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


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
            "device": str(resolve_device(params.device)), "amp": params.train.amp,
            "dvc_lock_sha256": sha256_file(lock) if lock.exists() else "none",
            "packages": json.dumps(package_versions()), "plugins": json.dumps(plugin_records()),
            **source_tags()}


@dataclass
class Tracker:
    """Run ids of one pipeline run; ``None`` client means tracking is off."""

    uri: str
    experiment_id: str
    parent_run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)  # by cell: what the stages log to
    variant_run_ids: dict[str, str] = field(default_factory=dict)  # a study's variant runs, by variant
    closed: set[str] = field(default_factory=set)  # runs this process has closed

    @property
    def client(self):
        return client(self.uri)

    @staticmethod
    def check(params: Params, root: Path = Path(".")) -> str:
        """Reach the tracking store now (before any work); raises TrackingError naming the fix."""
        uri = tracking_uri(params, root)
        try:
            with _store_init_lock(uri):  # MLflow creates a new sqlite store's tables on first use
                client(uri).search_experiments(max_results=1)
        except Exception as e:
            raise TrackingError(_unreachable(uri, e)) from None
        return uri

    @classmethod
    def start(cls, params: Params, params_file: str, overrides: list[str], root: Path = Path(".")) -> "Tracker":
        uri = tracking_uri(params, root)
        store = client(uri)
        try:
            with _store_init_lock(uri):
                exp_id = _experiment_id(store, params.tracking.experiment, uri)
        except Exception as e:  # connection refused, bad URI, locked database, ...
            raise TrackingError(_unreachable(uri, e)) from None
        repro = reproducibility_tags(params, root)
        tags = {**repro, "params_file": params_file,
                "overrides": json.dumps(overrides), "variants": ",".join(params.variant_names),
                "mlflow.runName": f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}"}
        parent = store.create_run(exp_id, tags=tags)
        tracker = cls(uri, exp_id, parent.info.run_id)
        from mlflow.entities import Param

        flat = _flatten({k: v for k, v in params.to_dict().items() if k not in ("train",)})
        flat.update(_flatten({k: v for k, v in params.to_dict()["train"].items() if k != "variants"}, "train."))
        tracker._log_params(tracker.parent_run_id, flat, Param)
        store.log_text(tracker.parent_run_id, json.dumps(params.to_dict(), indent=2), "resolved_params.json")
        train = {k: val for k, val in params.to_dict()["train"].items() if k != "variants"}
        if params.seeds is not None:
            store.set_tag(tracker.parent_run_id, "study", "true")
            for v in params.variant_names:  # the variant runs: aggregates over their seed runs
                run = store.create_run(exp_id, tags={**repro, "seed": json.dumps(params.seeds), "study": "true",
                                                     "mlflow.parentRunId": tracker.parent_run_id,
                                                     "mlflow.runName": v, "variant": v})
                tracker.variant_run_ids[v] = run.info.run_id
                tracker._log_params(run.info.run_id, _flatten({
                    "variant": v, "seeds": params.seeds, "n": len(params.seeds), "steps": params.variant_steps(v),
                    "spec": params.variant_spec(v).to_dict(), "train": train}), Param)
        for c in params.cells:
            parent = tracker.variant_run_ids.get(c.variant, tracker.parent_run_id)
            name = f"{c.variant} seed {c.seed}" if c.study else c.variant
            run = store.create_run(exp_id, tags={
                **repro, "seed": str(c.seed), "mlflow.parentRunId": parent, "mlflow.runName": name,
                "variant": c.variant, **({"cell": c.name} if c.study else {})})
            tracker.child_run_ids[c.name] = run.info.run_id
            vflat = _flatten({"variant": c.variant, "seed": c.seed, "steps": params.variant_steps(c.variant),
                              "spec": params.variant_spec(c.variant).to_dict(), "train": train})
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
        runs = [self.parent_run_id, *self.variant_run_ids.values(), *self.child_run_ids.values()]
        for run_id in runs:
            self._guard("tagging the data", self.client.set_tag, run_id, "data_hash", prepared["content_hash"])
            self._guard("tagging the data", self.client.set_tag, run_id, "dataset", prepared["dataset"])
        for run_id in runs:
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
        uri = tracking_uri(params, root)
        try:
            with _store_init_lock(uri):
                store = client(uri)
                exp = store.get_experiment_by_name(params.tracking.experiment)
                if exp is None:
                    return None
                found = store.search_runs([exp.experiment_id], max_results=1, filter_string=(
                    f"tags.{STATE_TAG} = '{state}' and attributes.status = 'FINISHED'"))
                if not found:
                    return None
                parent = found[0].info.run_id
                children = store.search_runs([exp.experiment_id],
                                              filter_string=f"tags.mlflow.parentRunId = '{parent}'")
                seed_runs = [r for c in children if c.data.tags.get("study") == "true" for r in
                             store.search_runs([exp.experiment_id],
                                               filter_string=f"tags.mlflow.parentRunId = '{c.info.run_id}'")]
        except Exception as e:
            raise TrackingError(_unreachable(uri, e)) from None
        finished = [r for r in children + seed_runs if r.info.status == "FINISHED"]
        child_ids = {r.data.tags.get("cell", r.data.tags.get("variant")): r.info.run_id for r in finished
                     if r.data.tags.get("study") != "true"}
        variant_ids = {r.data.tags.get("variant"): r.info.run_id for r in finished if r.data.tags.get("study") == "true"}
        if set(child_ids) != {c.name for c in params.cells} or (
                params.seeds is not None and set(variant_ids) != set(params.variant_names)):
            return None
        return {"uri": uri, "experiment_id": exp.experiment_id, "parent_run_id": parent,
                "child_run_ids": child_ids, **({"variant_run_ids": variant_ids} if variant_ids else {}),
                "complete": True}

    def log_study(self, record: dict[str, Any], report_dir: Path) -> None:
        """A study's aggregates on each variant run (``<metric>_mean``, ``_std``, ``_median``,
        ``_ci_low``, ``_ci_high``, and ``n``), which closes it; its report and plots on the
        pipeline run."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for v, summ in record["summaries"].items():
            items = [Metric("n", float(record["budget"]["n"]), ts, 0)]
            for name, s in summ.items():
                items += [Metric(f"{name}_{k}", float(s[k]), ts, 0) for k in ("mean", "std", "median", "ci_low", "ci_high")]
            for i in range(0, len(items), self.MAX_BATCH):
                self._guard("logging a study's aggregates", self.client.log_batch, self.variant_run_ids[v],
                            metrics=items[i:i + self.MAX_BATCH])
            self.finish_variant(v, ok=True)
        self.set_tag(None, "study_headline", record["headline"])  # what `flows compare` ranks a study by
        self._guard("logging the study", self.client.log_artifacts, self.parent_run_id, str(report_dir), "study")

    def finish_variant(self, variant: str, ok: bool, reason: str | None = None) -> None:
        """Close a study's variant run (the parent of its seed runs)."""
        self._close(self.variant_run_ids[variant], ok, reason)

    def finish(self, variant: str | None, ok: bool, reason: str | None = None) -> None:
        self._close(self.parent_run_id if variant is None else self.child_run_ids[variant], ok, reason)

    def abort(self, reason: str) -> None:
        """Close every variant, seed and study run still open as FAILED (the flow itself failed)."""
        for run_id in [*self.child_run_ids.values(), *self.variant_run_ids.values()]:
            if run_id not in self.closed:
                self._close(run_id, False, reason)

    def _close(self, run_id: str, ok: bool, reason: str | None = None) -> None:
        self.closed.add(run_id)
        if reason:
            self._guard("recording the failure", self.client.set_tag, run_id, "failure_reason", reason[:5000])
        self._guard("closing the run", self.client.set_terminated, run_id, "FINISHED" if ok else "FAILED")


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
        m.finish()  # stops its sampling thread first (both would touch its buffers) and flushes
        try:
            m.collect_metrics()
            m.publish_metrics(m.aggregate_metrics())
            m.mlflow_logger.flush()
        except Exception as e:  # a view of the run: never fails it
            log.warning("the last system-metrics sample was not logged: %s: %s", type(e).__name__, e)


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


def variant_run(uri: str, experiment: str, variant: str, checkpoint_sha256: str):
    """The newest MLflow run of ``experiment`` tagged ``variant == variant`` and
    ``checkpoint_sha256 == checkpoint_sha256`` (the variant run of the pipeline run that selected
    that checkpoint), or None; TrackingError when the store cannot be read."""
    store = client(uri)
    try:
        exp = store.get_experiment_by_name(experiment)
        if exp is None:
            return None
        # the hash is hex (safe in a filter); the variant name is compared here, not quoted into one
        runs = store.search_runs([exp.experiment_id], f"tags.checkpoint_sha256 = '{checkpoint_sha256}'",
                                  order_by=["attributes.start_time DESC"], max_results=100)
    except Exception as e:
        raise TrackingError(_unreachable(uri, e)) from None
    return next((r for r in runs if r.data.tags.get("variant") == variant), None)


def log_to_run(uri: str, run_id: str, metrics: dict[str, float], step: int, artifact: Path | None = None,
               artifact_path: str | None = None) -> None:
    """Log ``metrics`` at ``step`` (and one artifact file) to an existing run, finished or not."""
    from mlflow.entities import Metric

    store = client(uri)
    ts = int(time.time() * 1000)
    try:
        store.log_batch(run_id, metrics=[Metric(k, float(v), ts, step) for k, v in metrics.items()])
        if artifact is not None:
            store.log_artifact(run_id, str(artifact), artifact_path)
    except Exception as e:
        raise TrackingError(_unreachable(uri, e)) from None
