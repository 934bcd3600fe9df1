#!/usr/bin/env python3
"""A tiny TCP echo server for trying Strait locally (scripts/run-local.sh starts it).

Every connection gets back exactly the bytes it sends; when the client shuts its
write side, the server finishes echoing and shuts its own.

    python3 scripts/echo_server.py [HOST] [PORT]      (default 127.0.0.1 9000)
"""
import signal
import socketserver
import sys


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                break
            try:
                sock.sendall(data)
            except OSError:
                return
        try:
            sock.shutdown(socketserver.socket.SHUT_WR)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
    srv = Server((host, port), EchoHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"echo server on {host}:{port}", flush=True)
    try:
        srv.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
