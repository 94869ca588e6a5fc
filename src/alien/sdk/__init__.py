"""The app-facing API, exported from ``alien`` itself: resource accessors (``resources``), trigger
decorators (``triggers``) and the payloads handlers receive (``messages``), ``alien.serve``
(``serve``), remote commands (``commands``), the one handler registry they all fill
(``registry``), and the function runtime a platform runs for each function (``runtime``).
"""
