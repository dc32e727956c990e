"""Two plain ASGI wrappers: one log line per request (method, path, status, latency, when the last byte is
sent, so a stream's line has its whole length), and the request-body limit."""

import json
import logging
import time

from serving.uploads import HTTPError

log = logging.getLogger("serving.access")


class BodyTooLarge(HTTPError):
    def __init__(self, limit: int):
        super().__init__(413, f"request body over the server's limit of {limit / 2**20:g} MB (--max-upload-mb)")


class RequestLog:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [None]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:  # a client that left before any response is logged as nginx does: 499
            log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status[0] or 499,
                     (time.perf_counter() - start) * 1000)


class BodyLimit:
    """A body over ``max_bytes`` is a 413: at once when its Content-Length says so, else (chunked upload) as
    soon as the bytes read pass the limit (the endpoint reading it gets :class:`BodyTooLarge`)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps({"detail": BodyTooLarge(self.max_bytes).detail}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)
