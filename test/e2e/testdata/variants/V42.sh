# V42 CRED-002: instance metadata fetched with python urllib (no curl) from an inference container
ctr_run simctr-infer-v42 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import urllib.request
try:
    urllib.request.urlopen("http://169.254.169.254/latest/meta-data/iam/security-credentials/", timeout=2).read()
except Exception as e:
    print("imds:", type(e).__name__)'
