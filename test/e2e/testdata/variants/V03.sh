# V03 ESC-002 on core_pipe_limit: dd of= relative to /proc/sys/kernel (writes the current value back: no change)
ctr_run simctr-infer-v03 ctr-infer --mount -- sh -c '
  cd /proc/sys/kernel && cat core_pipe_limit | dd of=core_pipe_limit status=none && echo "core_pipe_limit still $(cat core_pipe_limit)"'
