#!/usr/bin/env python3
"""Decoy container-runtime sockets: decoy_sock.py PATH... ; answers any request with HTTP 200 '[]'."""
import os, socket, sys, threading
def serve(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(3); n = len(c.recv(65536))
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]')
            print(f'decoy {path}: {n} bytes', flush=True)
        except OSError:
            pass
        finally:
            c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(p,), daemon=True).start()
threading.Event().wait()
