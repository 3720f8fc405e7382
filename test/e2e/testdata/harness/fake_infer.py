#!/usr/bin/env python3
"""Stand-in inference server. Maps model files the way safetensors/torch do (open + mmap, no fd kept),
optionally becomes a real GPU owner (--cuda, needs torch), optionally deserialises an untrusted pickle
(the AML.T0011.000 path), then serves /health and /v1/completions over HTTP."""
import argparse, http.server, json, mmap, os, pickle, time
ap = argparse.ArgumentParser()
ap.add_argument('--model', action='append', default=[])
ap.add_argument('--pickle')
ap.add_argument('--port', type=int, default=8000)
ap.add_argument('--cuda', action='store_true')
ap.add_argument('--wait-file', help='block until this file exists: lets the harness put our host PID '
                                    'into the NVML mock before weights are opened (CUDA init precedes weight load)')
a = ap.parse_args()
hold = None
if a.cuda:
    import torch
    hold = torch.empty(256 << 20, dtype=torch.uint8, device='cuda')   # NVML lists this pid from here on
while a.wait_file and not os.path.exists(a.wait_file):
    time.sleep(0.2)
maps = []
for m in a.model:
    with open(m, 'rb') as f:                                # OPEN O_RDONLY by the GPU owner
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    sum(mm[i] for i in range(0, len(mm), 4096))             # fault the pages in
    maps.append(mm)
if a.pickle:
    with open(a.pickle, 'rb') as f:
        pickle.load(f)                                      # deliberately unsafe
class H(http.server.BaseHTTPRequestHandler):
    def _ok(self, body):
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._ok(b'{"status":"ok"}' if self.path.startswith('/health') else b'{}')
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self._ok(json.dumps({'choices': [{'text': 'x' * 2048}]}).encode())
    def log_message(self, *args):
        pass
print(f'fake_infer pid(ns)={os.getpid()} port={a.port}', flush=True)
http.server.ThreadingHTTPServer(('0.0.0.0', a.port), H).serve_forever()
