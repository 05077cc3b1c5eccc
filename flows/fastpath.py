"""The no-change fast path of ``flows run``: when every stage is up to date and the tracking
store holds a finished run that logged exactly this state, there is nothing to do, and Prefect is
not even started (as ``dvc repro`` runs nothing).

There is no cache of its own: "up to date" is each stage's record, verified against its outputs
(``tasks.stages``), and "logged" is asked of the tracking store itself (a parent run tagged with
the state), so a deleted ``mlflow.db`` or run means the flow runs and logs again.
"""

from __future__ import annotations

import json
from typing import Any

from tasks.config import Params
from tasks.layout import Layout
from tasks.records import fingerprint
from tasks.stages import code_hashes, pipeline_state


def logged_state(params: Params, layout: Layout = Layout()) -> str | None:
    """What a finished, fully logged run is tagged with: every stage's state, and the code of the
    flow that logs it (a changed flow logs differently).  None when some stage has work to do."""
    state = pipeline_state(params, layout)
    return None if state is None else fingerprint(state, code_hashes("flows.pipeline"))


def already_done(params: Params, layout: Layout = Layout()) -> dict[str, Any] | None:
    """The result to report when there is nothing to do, else None."""
    state = logged_state(params, layout)
    if state is None:
        return None
    tracking = None
    if params.tracking.enabled:
        from tasks.reporting.tracking import Tracker

        tracking = Tracker.logged_run(params, state)
        if tracking is None:
            return None  # up to date on disk, but not logged in this store (yet, or any more)
    variants = {c.name: {"evaluate": json.loads(layout.metrics_file(c.name).read_text())} for c in params.cells}
    study = json.loads((layout.root / "reports" / "study" / "study.json").read_text()) if params.seeds else None
    where = f"logged in MLflow run {tracking['parent_run_id']}" if tracking else "tracking is off"
    return {"variants": variants, "failed": {}, "tracking": tracking, **({"study": study} if study else {}),
            "skipped": f"nothing to do: settings, code and every stage's outputs are unchanged, {where} "
                       "(--force-flow runs the flow anyway)"}
