"""Test helpers shared across suites: a real manager process, an API client, PostgreSQL databases.

Import as ``from support.manager import ManagerProcess`` etc. (``tests/`` is on ``sys.path``
through the root ``tests/conftest.py``), or use the fixtures that ``tests/conftest.py`` exposes:
``database_url``, ``manager``, ``manager_factory``.
"""
