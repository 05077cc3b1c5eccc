"""The champion alias of the model registry, on a real (temporary sqlite) MLflow store."""

from __future__ import annotations

import json

from tasks.reporting.model_registry import CHAMPION, promote_if_better


def _version(client, name, run_id):
    return client.create_model_version(name, f"runs:/{run_id}/generator", run_id=run_id).version


def test_champion_moves_only_to_a_better_model_on_the_same_basis(isolated_stores):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{isolated_stores / 'registry.db'}")
    exp = client.create_experiment("reg", artifact_location=(isolated_stores / "art").as_uri())
    run_id = client.create_run(exp).info.run_id
    client.create_registered_model("g")
    basis = {"metric": "fid", "extractor": "classifier", "data_hash": "abc"}

    def register(rank, b=basis):
        v = _version(client, "g", run_id)
        client.set_model_version_tag("g", v, "selection_basis", json.dumps(b))
        client.set_model_version_tag("g", v, "selection_rank", json.dumps(rank))
        return v, promote_if_better(client, "g", v, b, rank)

    champion = lambda: client.get_model_version_by_alias("g", CHAMPION).version  # noqa: E731
    v1, msg = register([10.0])
    assert champion() == v1 and "is the champion" in msg
    v2, msg = register([20.0])  # worse FID
    assert champion() == v1 and "stays" in msg
    v3, msg = register([5.0])  # better
    assert champion() == v3
    v4, msg = register([5.0])  # a tie does not move it
    assert champion() == v3
    v5, msg = register([1.0], {**basis, "data_hash": "other"})  # better, but on other data
    assert champion() == v3 and "other data" in msg
    assert len({v1, v2, v3, v4, v5}) == 5
