"""Log records are redacted before any handler formats them: message, args, tracebacks, extras."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from alien.redaction import (
    DEFAULT_LOGGERS,
    REDACTED,
    RedactingFilter,
    Redactor,
    default_redactor,
    install_logging_redaction,
)

R = REDACTED
CANARY = "canary-2b7d0c9e5a31"


class Capture(logging.Handler):
    """Keeps records and their formatted text."""

    def __init__(self, formatter: logging.Formatter | None = None) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(formatter or logging.Formatter("%(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([CANARY])


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"alien.tests.redaction.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for filt in list(log.filters):
        log.removeFilter(filt)


@pytest.fixture
def capture(logger: logging.Logger, redactor: Redactor) -> Capture:
    handler = Capture()
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    return handler


def test_secrets_in_arguments_are_redacted(logger: logging.Logger, capture: Capture) -> None:
    logger.info("vault value %s read by %s", CANARY, "bob")

    assert capture.lines == [f"INFO vault value {R} read by bob"]
    # the structure is kept when it renders the same as the redacted message
    assert capture.records[0].args == (R, "bob")


def test_secrets_in_the_format_string_are_redacted(
    logger: logging.Logger, capture: Capture
) -> None:
    logger.warning(f"inline {CANARY} and password=hunter2 (%d)", 3)

    assert capture.lines == [f"WARNING inline {R} and password={R} (3)"]


def test_a_secret_split_across_format_and_argument_flattens_the_record(
    logger: logging.Logger, capture: Capture
) -> None:
    logger.info("token=%s", "abcdef123456")

    assert capture.lines == [f"INFO token={R}"]
    assert capture.records[0].args is None


def test_mapping_arguments_are_redacted(logger: logging.Logger, capture: Capture) -> None:
    logger.info("%(who)s used %(what)s", {"who": "bob", "what": CANARY})

    assert capture.lines == [f"INFO bob used {R}"]


def test_objects_whose_text_holds_a_secret_are_redacted(
    logger: logging.Logger, capture: Capture
) -> None:
    class Url:
        def __str__(self) -> str:
            return f"https://u:{CANARY}@host/"

    logger.info("connecting to %s, %r", Url(), 5)

    assert capture.lines == [f"INFO connecting to https://u:{R}@host/, 5"]


def test_exception_text_is_redacted(logger: logging.Logger, capture: Capture) -> None:
    try:
        raise RuntimeError(f"upstream refused Authorization: Bearer {CANARY}")
    except RuntimeError:
        logger.exception("call failed")

    record = capture.records[0]
    assert "Traceback" in capture.text
    assert f"Authorization: Bearer {R}" in capture.text
    assert CANARY not in capture.text
    assert record.exc_info is None  # nothing left for a handler to re-render in clear


def test_stack_info_is_redacted(logger: logging.Logger, capture: Capture) -> None:
    logger.info("here", stack_info=True)  # the stack shows this line: canary-2b7d0c9e5a31

    assert "Stack (most recent call last)" in capture.text
    assert f"the stack shows this line: {R}" in capture.text
    assert CANARY not in capture.text


def test_extra_attributes_are_redacted(logger: logging.Logger, capture: Capture) -> None:
    logger.info("request", extra={"token": "abc", "body": {"password": "x", "q": CANARY}})

    record = capture.records[0]
    assert record.token == R  # type: ignore[attr-defined]
    assert record.body == {"password": R, "q": R}  # type: ignore[attr-defined]


def test_a_bad_format_string_neither_crashes_nor_leaks(
    logger: logging.Logger, capture: Capture
) -> None:
    logger.info("%d items for %s", "not a number", CANARY)

    assert len(capture.lines) == 1
    assert CANARY not in capture.text


def test_a_record_is_redacted_once_through_several_filters(
    logger: logging.Logger, capture: Capture, redactor: Redactor
) -> None:
    logger.addFilter(RedactingFilter(redactor))

    logger.info("x %s", CANARY)

    assert capture.lines == [f"INFO x {R}"]


def test_uvicorns_access_formatter_still_works(logger: logging.Logger, redactor: Redactor) -> None:
    # uvicorn's access formatter unpacks record.args: the structure must survive redaction.
    handler = Capture(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)

    logger.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/v1/debug?token={CANARY}&x=1",
        "1.1",
        200,
    )

    assert handler.lines == [f'127.0.0.1:5000 - "GET /v1/debug?token={R}&x=1 HTTP/1.1" 200 OK']


def test_the_process_wide_redactor_is_used_by_default(logger: logging.Logger) -> None:
    handler = Capture()
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    secret = "process-wide-canary-91c2"
    default_redactor().add_secret(secret)
    try:
        logger.info("v=%s", secret)
    finally:
        default_redactor().discard_secret(secret)

    assert handler.lines == [f"INFO v={R}"]


# --- installing on the process's loggers --------------------------------------------------------


@pytest.fixture
def process_loggers() -> Iterator[dict[str, Capture]]:
    """Root and uvicorn's loggers, each with a capturing handler; restored afterwards."""
    saved = {}
    captures = {}
    for name in DEFAULT_LOGGERS:
        log = logging.getLogger(name)
        saved[name] = (list(log.handlers), list(log.filters), log.level, log.propagate)
        captures[name] = Capture(logging.Formatter("%(name)s %(message)s"))
        log.handlers = [captures[name]]
        log.filters = []
        log.setLevel(logging.INFO)
        log.propagate = name == ""  # uvicorn's loggers do not propagate
    yield captures
    for name, (handlers, filters, level, propagate) in saved.items():
        log = logging.getLogger(name)
        log.handlers, log.filters, log.propagate = handlers, filters, propagate
        log.setLevel(level)


def test_install_covers_root_children_and_uvicorn(
    process_loggers: dict[str, Capture], redactor: Redactor
) -> None:
    install_logging_redaction(redactor)

    logging.getLogger("alien.manager.some.child").warning("child %s", CANARY)
    logging.getLogger("uvicorn.error").error("uvicorn %s", CANARY)
    logging.getLogger().error("root %s", CANARY)

    assert process_loggers[""].lines == [
        f"alien.manager.some.child child {R}",
        f"root root {R}",
    ]
    assert process_loggers["uvicorn.error"].lines == [f"uvicorn.error uvicorn {R}"]


def test_install_is_idempotent_and_covers_handlers_added_since(
    process_loggers: dict[str, Capture], redactor: Redactor
) -> None:
    install_logging_redaction(redactor)
    late = Capture()
    logging.getLogger().addHandler(late)

    install_logging_redaction(redactor)
    logging.getLogger("alien.x").warning("late %s", CANARY)

    root = logging.getLogger()
    assert sum(isinstance(f, RedactingFilter) for f in root.filters) == 1
    assert sum(isinstance(f, RedactingFilter) for f in process_loggers[""].filters) == 1
    assert late.lines == [f"WARNING late {R}"]


def test_output_to_a_stream_never_contains_the_canary(
    logger: logging.Logger, redactor: Redactor
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)

    logger.info("a %s", CANARY)
    logger.info({"dict": CANARY})
    try:
        {}[CANARY]
    except KeyError:
        logger.exception("lookup of %r failed", CANARY)

    assert stream.getvalue().count(R) >= 4
    assert CANARY not in stream.getvalue()


def test_a_handler_s_own_redactor_still_redacts_what_a_process_wide_filter_let_through(
    logger: logging.Logger, redactor: Redactor
) -> None:
    """The process-wide filter (which knows nothing of this secret) sees the record first, on
    the logger; the handler's filter, with a redactor that knows it, must not skip the record
    as "already redacted"."""
    logger.addFilter(RedactingFilter(Redactor()))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    logger.info("a %s", CANARY)
    assert stream.getvalue() == f"a {R}\n"
