"""The skeleton of the fake OpenAI-compatible servers the HTTP tests run on loopback."""

import json
from http.server import BaseHTTPRequestHandler


class JSONHandler(BaseHTTPRequestHandler):
    """Quiet, answers ``GET /models`` with one model ``toy``; ``_send`` takes a JSON-able object or raw bytes."""

    log_message = lambda *a: None  # noqa: E731

    def _send(self, code, obj):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(200, {"data": [{"id": "toy"}]})
