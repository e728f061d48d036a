#!/usr/bin/env python3
"""A webhook receiver for trying Wharf out (README.md, "The first five minutes").

Listens on 127.0.0.1:PORT (default 9000), prints one line per webhook Wharf delivers (the
event's type, then its JSON envelope) and answers 204. It does not check signatures: a real
receiver must (docs/events.md, "Verifying a request").

    python3 scripts/webhook-receiver.py [PORT]
"""

import http.server
import json
import sys


class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(body)
            print(f"{event.get('type')} {json.dumps(event)}", flush=True)
        except ValueError:
            print(f"(not JSON) {body!r}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):
        pass  # one line per webhook, above, is enough


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
server = http.server.HTTPServer(("127.0.0.1", port), Hook)
print(f"waiting for webhooks on http://127.0.0.1:{port}/", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
