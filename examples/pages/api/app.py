"""Pages: store text pages, sign them with a secret, count views and words.

The same code runs on every platform: ``alien.storage("pages")`` and friends return whatever
backend the platform bound, and the trigger handlers below run wherever the stack puts them.
"""

import hashlib
import hmac
import json
import threading

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

import alien
from alien.sdk.messages import CronTick, QueueMessage, StorageEvent

SIGNING_KEY = "signing-key"  # set it with: alien dev secret set secrets signing-key

app = FastAPI(title="pages")
_views_lock = threading.Lock()


@app.exception_handler(alien.AlienError)
async def alien_error(request: Request, exc: alien.AlienError) -> JSONResponse:
    """Bad keys, missing objects, ...: answer with alien's error body and status."""
    return JSONResponse(exc.to_dict(), status_code=exc.status)


@app.put("/pages/{name}")
async def put_page(name: str, request: Request) -> dict:
    text = await request.body()
    info = await alien.storage("pages").aio.put(name, text, content_type="text/plain")
    # Counting words is slow work in real life: hand it to the queue trigger.
    await alien.queue("jobs").aio.send(json.dumps({"page": name}))
    return {"name": name, "size": info.size, "etag": info.etag}


@app.get("/pages/{name}", response_class=PlainTextResponse)
def get_page(name: str) -> str:
    text = alien.storage("pages").get(name).decode()
    # kv has no atomic increment; the lock makes the count exact within this process.
    with _views_lock:
        views = int(alien.kv("stats").get(f"views/{name}") or 0) + 1
        alien.kv("stats").set(f"views/{name}", str(views))
    return text


@app.delete("/pages/{name}")
def delete_page(name: str) -> dict:
    return {"deleted": alien.storage("pages").delete(name)}


@app.get("/pages/{name}/stats")
def page_stats(name: str) -> dict:
    kv = alien.kv("stats")

    def number(key: str) -> int | None:
        value = kv.get(key)
        return int(value) if value is not None else None

    last_event = kv.get(f"events/{name}")
    return {
        "views": number(f"views/{name}") or 0,
        "words": number(f"words/{name}"),
        "last_event": last_event.decode() if last_event else None,
    }


@app.get("/pages/{name}/signature")
def page_signature(name: str) -> dict:
    """An HMAC of the page with the vault's signing key: proves we hold the key, never shows it."""
    try:
        key = alien.vault("secrets").get_secret(SIGNING_KEY)
    except alien.AlienError:
        raise HTTPException(503, f"no {SIGNING_KEY!r} in vault 'secrets' yet") from None
    page = alien.storage("pages").get(name)
    digest = hmac.new(key.encode(), page, hashlib.sha256).hexdigest()
    return {"name": name, "hmac_sha256": digest}


@app.get("/stats")
def site_stats() -> dict:
    last = alien.kv("stats").get("nightly/last-run")
    total = alien.kv("stats").get("nightly/pages")
    return {
        "pages": int(total) if total is not None else None,
        "nightly_last_run": last.decode() if last else None,
    }


# --- triggers -----------------------------------------------------------------------------


@alien.on_queue_message("jobs")
def count_words(message: QueueMessage) -> None:
    """Acked when this returns; if it raises, the job is retried after the visibility timeout."""
    page = message.json()["page"]
    try:
        text = alien.storage("pages").get(page).decode()
    except alien.AlienError:
        return  # deleted since: nothing to count
    alien.kv("stats").set(f"words/{page}", str(len(text.split())))


@alien.on_storage_event("pages")
def on_page_change(event: StorageEvent) -> None:
    alien.kv("stats").set(f"events/{event.key}", event.event)


@alien.on_cron("nightly")
async def nightly(tick: CronTick) -> None:
    count = 0
    async for _ in alien.storage("pages").aio.list():
        count += 1
    await alien.kv("stats").aio.set("nightly/pages", str(count))
    await alien.kv("stats").aio.set("nightly/last-run", tick.scheduled_at.isoformat())


# --- commands: what the vendor's operators run remotely (`alien dev command` locally) ------------


@alien.command("page-stats")
def page_stats_command(name: str) -> dict:
    """The numbers ``GET /pages/{name}/stats`` shows, for an operator with no access to the API."""
    return page_stats(name)


@alien.command("generate-report")
def generate_report(ctx: alien.CommandContext, prefix: str = "", limit: int = 100) -> dict:
    """Pages (under ``prefix``, at most ``limit``) with their size and views.

    Sync handlers run in a worker thread; checking the context between pages lets a cancelled
    or expired report stop early instead of running on unseen.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    kv = alien.kv("stats")
    pages = []
    for info in alien.storage("pages").list(prefix, limit=limit):
        ctx.raise_if_cancelled()
        views = kv.get(f"views/{info.key}")
        pages.append({"name": info.key, "size": info.size, "views": int(views or 0)})
    return {"pages": pages, "total_bytes": sum(page["size"] for page in pages)}
