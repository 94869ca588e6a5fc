"""Sample stacks shared by the tests."""

from __future__ import annotations

import alien


def architecture_stack() -> alien.Stack:
    """The example stack of docs/ARCHITECTURE.md's manifest section."""
    data = alien.Storage("data")
    credentials = alien.Vault("credentials")
    cache = alien.Kv("cache")
    tasks = alien.Queue("tasks", visibility_timeout=30)
    api = (
        alien.Function("api")
        .code(src="./api", entrypoint="app:app")
        .link(data)
        .link(credentials)
        .link(cache)
        .ingress("public")
        .commands_enabled(True)
        .on_queue(tasks)
        .on_storage(data, events=("put", "delete"))
        .schedule("nightly", "0 3 * * *")
    )
    return (
        alien.Stack("my-app")
        .add(api, "live")
        .add(data, "frozen")
        .add(credentials, alien.Lifecycle.FROZEN)
        .add(cache, "live")
        .add(tasks, "live")
    )
