"""One module per command of ``python -m flows``; each has ``main(args) -> exit code``.

``run``: the whole pipeline as one Prefect flow; ``stages``: check and the five stages, as
``dvc.yaml`` runs them; ``compare``, ``rerun``, ``ui``, ``serve``, ``human_eval``, ``listing``
(variants, datasets), ``dvc_yaml``; ``settings``: what several commands read first.
"""

# command name -> module under flows.commands (imported only when its command runs)
COMMANDS = {"run": "run", "check": "stages", "prepare": "stages", "train": "stages", "select": "stages",
            "evaluate": "stages", "export": "stages", "study": "stages", "compare": "compare", "rerun": "rerun", "ui": "ui",
            "serve": "serve", "human-eval": "human_eval", "variants": "listing", "datasets": "listing",
            "dvc-yaml": "dvc_yaml"}
