"""The function runtime: what a platform runs for each function (``python -m alien.sdk.runtime``).

Modules: ``config`` (the environment contract), ``address`` (where the platform has it listen),
``loader`` (import the entrypoint), ``http`` (uvicorn), ``http_guard`` (the app answers the
platform only), ``loops`` (queue consumers and cron), ``wiring`` (triggers ↔ handlers),
``dispatch`` (calling a handler safely), ``control_app`` / ``control`` (the command control
endpoint the platform invokes commands through) and ``main`` (start, ready line, graceful stop).
"""
