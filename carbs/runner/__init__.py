"""Running trials: a user's command in a subprocess (``carbs.runner.worker``) or a
Python objective in threads (``carbs.runner.in_process``).

Submodules are imported on use so that trial programs calling ``carbs.report``
do not load the database layer.
"""
