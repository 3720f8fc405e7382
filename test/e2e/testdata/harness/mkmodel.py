#!/usr/bin/env python3
"""Write a valid safetensors file of SIZE MiB of random U8 data: mkmodel.py PATH [SIZE_MIB]"""
import json, os, struct, sys
path, mib = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
n = mib << 20
hdr = json.dumps({'__metadata__': {'format': 'pt'}, 'w': {'dtype': 'U8', 'shape': [n], 'data_offsets': [0, n]}}).encode()
hdr += b' ' * (-len(hdr) % 8)
os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(hdr))); f.write(hdr)
    for _ in range(mib):
        f.write(os.urandom(1 << 20))
