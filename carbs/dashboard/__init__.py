"""The live dashboard: ``carbs dashboard`` serves a storage's studies in the browser.

Needs the ``dashboard`` extra (``pip install 'carbs-tuner[dashboard]'``: Starlette,
uvicorn and plotly, whose wheel ships plotly.js, so pages work offline).
:func:`carbs.dashboard.server.serve` starts it; :func:`carbs.dashboard.app.create_app`
builds the ASGI application alone.
"""
