"""The pages example: a small HTTP API with storage, a vault, kv, a queue and three triggers.

Run it locally with ``alien dev`` in this directory.
"""

import alien

pages = alien.Storage("pages")  # the customer's data: created once, never modified by updates
secrets = alien.Vault("secrets")
stats = alien.Kv("stats")
jobs = alien.Queue("jobs", visibility_timeout=30)

api = (
    alien.Function("api")
    .code(src="api", entrypoint="app:app")
    .link(pages)
    .link(secrets)
    .link(stats)
    .link(jobs)
    .ingress("public")
    .commands_enabled()  # page-stats, generate-report
    .on_queue(jobs)  # count_words
    .on_storage(pages, events=("put", "delete"))  # on_page_change
    .schedule("nightly", "0 3 * * *")  # nightly (UTC)
)

stack = (
    alien.Stack("pages")
    .add(api, "live")
    .add(pages, "frozen")
    .add(secrets, "frozen")
    .add(stats, "live")
    .add(jobs, "live")
)
