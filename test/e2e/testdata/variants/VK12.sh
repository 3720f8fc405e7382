# VK12 CRED-003 the GPU owner's environment read through a symlink (cat, no /proc/<pid>/environ path passed)
ctr_run simctr-infer-vk12 ctr-infer --mount --uts --ipc -- env HF_TOKEN=hf_fake_vk12 timeout 20 python3 "$H/fake_infer.py" --port 8112 & J=$!
sleep 1.5; VP=$(host_pid_of 'fake_infer.py --port 8112'); nvml_mock_add "$VP"; sleep 1.2
ctr_run simctr-sidecar-vk12 ctr-infer --mount --uts --ipc -- sh -c '
  ln -sf /proc/$0/environ /tmp/vk12.env; tr "\\0" "\\n" < /tmp/vk12.env | grep -c TOKEN; rm -f /tmp/vk12.env' "$VP"
kill "$VP" 2>/dev/null; wait "$J"; true
