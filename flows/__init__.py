"""Flows: compose the stages in ``tasks`` into the Prefect pipeline and own the command line."""
