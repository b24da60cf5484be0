# python3's http.server on a Unix-domain socket: files from ROOT by
# SimpleHTTPRequestHandler (HTTP/1.1, keep-alive), and PUT answering
# "LENGTH SHA256" of the body it read.
import hashlib
import http.server
import socketserver
import sys

sock, root = sys.argv[1], sys.argv[2]


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=root, **kwargs)

    def address_string(self):
        return "unix"  # client_address is empty on a Unix socket

    def do_PUT(self):
        left = int(self.headers["Content-Length"])
        h, n = hashlib.sha256(), 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
            left -= len(chunk)
        body = ("%d %s" % (n, h.hexdigest())).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


srv = Server(sock, Handler)
print("READY", file=sys.stderr, flush=True)
srv.serve_forever()
