#!/usr/bin/env python3
"""Build a minimal pure-Python wheel without setuptools/wheel: mkwheel.py OUTDIR"""
import base64, hashlib, os, sys, zipfile
out = sys.argv[1]; os.makedirs(out, exist_ok=True)
name, ver = 'ebpfh_demo', '0.1.0'
files = {
    f'{name}/__init__.py': b'VALUE = 1\n',
    f'{name}-{ver}.dist-info/METADATA': f'Metadata-Version: 2.1\nName: ebpfh-demo\nVersion: {ver}\n'.encode(),
    f'{name}-{ver}.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: mkwheel\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
}
rec = ''.join(f'{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()},{len(d)}\n' for p, d in files.items())
files[f'{name}-{ver}.dist-info/RECORD'] = (rec + f'{name}-{ver}.dist-info/RECORD,,\n').encode()
with zipfile.ZipFile(os.path.join(out, f'{name}-{ver}-py3-none-any.whl'), 'w') as z:
    for p, d in files.items():
        z.writestr(p, d)
