# V21 CRED-003: the GPU owner's environment read with xargs -0 < /proc/<owner>/environ
ctr_run simctr-infer-v21 ctr-infer --mount --uts --ipc -- env HF_TOKEN=hf_fake_v21 timeout 20 python3 "$H/fake_infer.py" --port 8021 & J=$!
sleep 1.5; VP=$(host_pid_of 'fake_infer.py --port 8021'); nvml_mock_add "$VP"; sleep 1.2
ctr_run simctr-sidecar-v21 ctr-infer --mount --uts --ipc -- sh -c 'xargs -0 -n1 < /proc/$0/environ | grep -c TOKEN' "$VP"
kill "$VP" 2>/dev/null; wait "$J"; true
