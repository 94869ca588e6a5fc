"""The local platform: run a stack on this machine, in one isolated directory (the area).

``platform.LocalPlatform`` is the entry point (used by ``alien dev`` and the agent). One concept
per module: ``area`` (layout, path safety, lock), ``state`` (``state.json``), ``resources`` and
``provision`` (resources by lifecycle), ``releases`` (staged code), ``function_env`` (what a
function process sees), ``process`` / ``supervisor`` / ``backoff`` (running and restarting
function processes), ``proxy`` / ``ingress`` (the stable loopback port), ``control`` /
``control_file`` / ``control_client`` / ``dispatch`` (commands through each process's control
endpoint), ``files`` (private atomic writes), ``status`` (reports), ``dev`` (the ``alien dev``
session). See docs/ARCHITECTURE.md, "Local platform".
"""
