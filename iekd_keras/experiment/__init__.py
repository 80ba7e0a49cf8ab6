"""The experiment application: configs and their checks, the staged training run
(`train.train_and_evaluate`), run records, evaluation, export and reports."""
