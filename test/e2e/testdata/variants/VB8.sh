# VB8 benign: a Hugging Face hub download at server start, in huggingface_hub's own sequence: the blob is
# written as blobs/<etag>.incomplete, renamed into the blob store and pointed to from snapshots/<rev>/
ctr_run simctr-infer-vb8 ctr-infer --mount --pid --fork --mount-proc -- python3 -c '
import hashlib, os, sys
repo = os.path.join(sys.argv[1], "models--acme--fresh-1b")
for name, size in (("config.json", 700), ("model.safetensors", 2 << 20)):
    data = os.urandom(size); etag = hashlib.sha256(data).hexdigest()
    blob = os.path.join(repo, "blobs", etag); snap = os.path.join(repo, "snapshots", "5a1b2c3d", name)
    os.makedirs(os.path.dirname(blob), exist_ok=True); os.makedirs(os.path.dirname(snap), exist_ok=True)
    with open(blob + ".incomplete", "wb") as f:
        f.write(data)
    os.replace(blob + ".incomplete", blob)
    os.symlink(os.path.relpath(blob, os.path.dirname(snap)), snap)
os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
with open(os.path.join(repo, "refs", "main"), "w") as f:
    f.write("5a1b2c3d")
print("downloaded", sorted(os.listdir(os.path.join(repo, "snapshots", "5a1b2c3d"))))' "$H/hf/hub"
rm -rf "$H/hf/hub/models--acme--fresh-1b"
