#!/usr/bin/python3
"""A vendor feed server for the update tests: static files over HTTP/1.1 on
127.0.0.1 (port 0, written to --port-file), with byte ranges (RFC 9110) so
downloads can resume, a request log, and --die-after N to drop dead in the
middle of any response longer than N bytes (an interrupted download)."""
import argparse
import http.server
import os
import re
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--die-after", type=int, default=0)
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def do_GET(self):
            name = self.path.split("?", 1)[0].lstrip("/")
            path = os.path.join(args.dir, name)
            rng = self.headers.get("Range", "")
            log.write(f"GET /{name} range={rng or '-'}\n")
            if "/" in name or not os.path.isfile(path):
                self.send_error(404)
                return
            size = os.path.getsize(path)
            start, end, status = 0, size - 1, 200
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
                if not m or int(m.group(1)) >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), size - 1)
                status = 206
            length = end - start + 1
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                sent = 0
                while sent < length:
                    chunk = f.read(min(65536, length - sent))
                    if args.die_after and sent + len(chunk) > args.die_after:
                        self.wfile.write(chunk[: args.die_after - sent])
                        self.wfile.flush()
                        log.write(f"died after {args.die_after} bytes\n")
                        os._exit(3)
                    self.wfile.write(chunk)
                    sent += len(chunk)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
