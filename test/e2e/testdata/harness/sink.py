# Exfil sink: listens on several TCP ports, counts and discards bytes.
# HTTP PUT/POST with Content-Length gets a 200 reply so curl exits cleanly.
import re, socketserver, sys, threading
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(15)
        n, buf, need = 0, b'', None
        try:
            while True:
                b = self.request.recv(1 << 16)
                if not b:
                    break
                n += len(b)
                if need is None and len(buf) < 65536:
                    buf += b
                    if b'\r\n\r\n' in buf:
                        head, _, body = buf.partition(b'\r\n\r\n')
                        m = re.search(rb'(?i)content-length:\s*(\d+)', head)
                        need = int(m.group(1)) - len(body) if m else -1
                        if m and b'100-continue' in head.lower():
                            self.request.sendall(b'HTTP/1.1 100 Continue\r\n\r\n')
                elif need is not None and need >= 0:
                    need -= len(b)
                if need is not None and 0 <= need <= 0 or (need is not None and need < 0 and need != -1):
                    self.request.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
                    break
        except Exception:
            pass
        print(f'sink:{self.server.server_address[1]} from={self.client_address[0]} bytes={n}', flush=True)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
for p in map(int, sys.argv[1:] or ['80', '443', '3333', '4444', '9000']):
    threading.Thread(target=S(('0.0.0.0', p), H).serve_forever, daemon=True).start()
threading.Event().wait()
