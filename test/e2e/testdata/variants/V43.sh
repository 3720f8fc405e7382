# V43 EXF-006: recon for weights with find -iname on upper-case patterns and a models-- glob
ctr_run simctr-infer-v43 ctr-infer --mount --pid --fork --mount-proc -- sh -c '
  find $0 \( -iname "*.GGUF" -o -iname "*.SafeTensors" -o -path "*models--*" \) -size +1M 2>/dev/null | head -3' "$H"
