"""What the stages' results become for people: MLflow runs (``tracking``), the model registry
(``model_registry``), the variant comparison (``compare``), the human real-vs-fake study
(``human_eval``), and the generator as an MLflow model (``mlflow_generator``).  Not stages: the
flow and the commands call these with what the stages wrote."""
