"""A stand-in Kubernetes API server for ``kubectl exec`` and ``attach`` (no real one can run on
this machine).

It answers what kubectl 1.32 asks before an exec — ``/version``, the discovery documents, the
pod — and the exec (or attach) itself the way the API server does: a WebSocket upgrade with the
``v5.channel.k8s.io`` subprotocol, each message prefixed by its channel (0 stdin, 1 stdout,
3 the final status, 255 "close this channel"). With ``stdin=true`` it echoes stdin to stdout
until the client closes stdin; otherwise it prints the command it was given (an attach: the
container it attached to). Served over TLS
with its own certificate, in a thread of its own; it records every request's method, path and
``Authorization``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from alien.debug.tls import SessionCertificate

POD = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {"name": "web-0", "namespace": "shop"},
    "spec": {"containers": [{"name": "web", "image": "shop:1"}]},
    "status": {"phase": "Running"},
}
DOCUMENTS = {
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0-stand-in"},
    "/api": {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "x:443"}],
    },
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list"],
            },
            {
                "name": "pods/attach",
                "singularName": "",
                "namespaced": True,
                "kind": "PodAttachOptions",
                "verbs": ["create", "get"],
            },
            {
                "name": "pods/exec",
                "singularName": "",
                "namespaced": True,
                "kind": "PodExecOptions",
                "verbs": ["create", "get"],
            },
        ],
    },
    "/api/v1/namespaces/shop/pods/web-0": POD,
}
SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()
STDIN, STDOUT, STATUS, CLOSE = 0, 1, 3, 255


@dataclass
class KubeApi:
    ca_file: Path
    port: int = 0
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> KubeApi:
        started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(started),))
        self._thread.daemon = True
        self._thread.start()
        assert started.wait(10), "the stand-in API server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self, started: threading.Event) -> None:
        certificate = SessionCertificate.generate()
        self.ca_file.write_bytes(certificate.cert_pem)
        key_file = self.ca_file.with_suffix(".key")
        key_file.write_bytes(certificate.key_pem)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self.ca_file, key_file)
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(
            self._exec,
            "127.0.0.1",
            0,
            ssl=tls,
            process_request=self._request,
            subprotocols=["v5.channel.k8s.io"],  # type: ignore[list-item]
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            started.set()
            await self._stop.wait()

    def _request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.seen.append(("GET", request.path, request.headers.get("Authorization")))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None  # the exec: the WebSocket handshake goes on
        document = DOCUMENTS.get(urlsplit(request.path).path)
        status, body = (200, document) if document is not None else (404, {"kind": "Status"})
        raw = json.dumps(body).encode()
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(raw))),
                ("Connection", "close"),  # the websockets server closes after a plain answer
            ]
        )
        return Response(status, "OK" if status == 200 else "Not Found", headers, raw)

    async def _exec(self, websocket: ServerConnection) -> None:
        target = urlsplit(websocket.request.path)  # type: ignore[union-attr]
        query = parse_qs(target.query)
        if target.path.endswith("/attach"):
            line = f"attached to {query['container'][0]}\n"
            await websocket.send(bytes([STDOUT]) + line.encode())
        elif query.get("stdin") == ["true"]:
            async for message in websocket:
                assert isinstance(message, bytes)
                if message[:1] == bytes([STDIN]):
                    await websocket.send(bytes([STDOUT]) + message[1:])
                elif message[:2] == bytes([CLOSE, STDIN]):
                    break
        else:
            await websocket.send(bytes([STDOUT]) + f"ran: {' '.join(query['command'])}\n".encode())
        await websocket.send(bytes([STATUS]) + SUCCESS)
        await websocket.close()
