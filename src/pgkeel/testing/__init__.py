"""Testing helpers shipped with pgkeel: pytest fixtures that give each test a fresh database.

The plugin (:mod:`pgkeel.testing.plugin`, registered for every project that installs pgkeel
through the ``pytest11`` entry point ``pgkeel``) provides ``pg_server`` (the server under test:
``--pg-url`` / ``$PGKEEL_TEST_URL``, else an embedded server started for the session),
``pg_url`` (a fresh, empty database per test, cloned from a session template),
``pg_migrated_url`` / ``pg_migrated`` (the same, migrated to head) and the ``pg(">=16")`` marker.
Importing this package costs nothing: the plugin module, which needs pytest, is imported by
pytest (or by whoever asks for it), and it starts nothing until a fixture is used.
"""

from __future__ import annotations

__all__: list[str] = []
