# V22 CRED-003: cloud credentials file read with python (not cat), run from a shell in the sidecar
mkdir -p "$H/home/.aws"; printf '[default]\naws_access_key_id = AKIAFAKE\naws_secret_access_key = fake\n' > "$H/home/.aws/credentials"
ctr_run simctr-sidecar-v22 ctr-infer --mount -- sh -c '
  python3 -c "import sys; print(len(open(sys.argv[1]).read().splitlines()), \"lines of credentials\")" "$0"; true' "$H/home/.aws/credentials"
