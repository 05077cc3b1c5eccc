"""Stages: plain functions from typed settings and input files to output files.

Both the Prefect flow (``flows.pipeline``) and ``dvc.yaml`` (through ``python -m flows <stage>``)
call these same functions.
"""
