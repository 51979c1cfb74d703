"""Running trials: a user's command in a subprocess (``carbs.runner.worker``).

Submodules are imported on use so that trial programs calling ``carbs.report``
do not load the database layer.
"""
