#!/usr/bin/env bash
# What `make test` needs, checked before any test runs, so a missing tool is named with its package
# instead of surfacing as a scenario that "did not fire" (no modprobe: no init_module, no ESC-008).
#
#   scripts/preflight.sh              check; exit 1 naming every missing piece and its package
#   scripts/preflight.sh --install    also install the missing Debian/Ubuntu packages (root, apt-get)
#   scripts/preflight.sh --generate   also check what `make generate` needs (clang, bpftool, protoc)
#
# `make test` runs it with --install when it runs as root where apt-get exists (set
# KESTREL_NO_INSTALL=1 to only check), so a fresh machine needs nothing but Go and the README's two
# commands; `make deps` installs explicitly; .ci/run uses it too.
set -euo pipefail
cd "${BASH_SOURCE[0]%/*}/.."

install=0 generate=0
for a in "$@"; do
  case $a in
    --install) install=1 ;;
    --generate) generate=1 ;;
    *) echo "preflight: unknown argument $a (want --install, --generate)" >&2; exit 2 ;;
  esac
done

# command:package, for the tests (the scenario harness and its attack variants run these) and, with
# --generate, for the code generators.
test_tools=(
  make:make git:git gcc:gcc bash:bash python3:python3 perl:perl curl:curl wget:wget tar:tar gzip:gzip
  sha256sum:coreutils base64:coreutils split:coreutils dd:coreutils tee:coreutils timeout:coreutils
  find:findutils xargs:findutils unshare:util-linux nsenter:util-linux mount:util-linux flock:util-linux
  setpriv:util-linux ip:iproute2 pgrep:procps ps:procps iptables:iptables modprobe:kmod rmmod:kmod
  scp:openssh-client ssh:openssh-client logrotate:logrotate
)
generate_tools=(clang:clang llvm-strip:llvm bpftool:bpftool protoc:protobuf-compiler)
# file:package: headers cgo (go-nvml) and the generators compile against.
test_files=(/usr/include/stdio.h:libc6-dev)
generate_files=(/usr/include/bpf/bpf_helpers.h:libbpf-dev /usr/include/google/protobuf/timestamp.proto:libprotobuf-dev)

tools=("${test_tools[@]}") files=("${test_files[@]}")
if ((generate)); then
  tools+=("${generate_tools[@]}") files+=("${generate_files[@]}")
fi

missing_pkgs=() problems=()
check_packages() {
  missing_pkgs=() problems=()
  local e
  for e in "${tools[@]}"; do
    command -v "${e%%:*}" >/dev/null 2>&1 || { problems+=("command ${e%%:*} (package ${e#*:})"); missing_pkgs+=("${e#*:}"); }
  done
  for e in "${files[@]}"; do
    [[ -e ${e%%:*} ]] || { problems+=("file ${e%%:*} (package ${e#*:})"); missing_pkgs+=("${e#*:}"); }
  done
  if ((${#missing_pkgs[@]})); then
    mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)
  fi
}
check_packages

if ((${#missing_pkgs[@]})) && ((install)); then
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "preflight: missing packages ${missing_pkgs[*]}, and installing them needs root and apt-get" >&2
  else
    echo "preflight: installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
    check_packages
  fi
fi

# Go: the version go.mod names, at least.
want_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
if ! command -v go >/dev/null; then
  problems+=("Go >= $want_go on PATH (from go.dev/dl or your distribution; Debian's golang package may be older)")
elif have_go=$(go env GOVERSION 2>/dev/null | sed 's/^go//'); [[ $(printf '%s\n%s\n' "$want_go" "$have_go" | sort -V | head -1) != "$want_go" ]]; then
  problems+=("Go >= $want_go (this is $have_go)")
fi

# The kernel and privileges: the eBPF and scenario tests load programs and build namespaces and
# cgroups for real.
[[ $(id -u) == 0 ]] || problems+=("root: the eBPF and scenario tests load programs and build namespaces (run: sudo make test)")
kernel=$(uname -r)
kv=${kernel%%[^0-9.]*}
# The sensor's minimum (docs/kernel.md): tp_btf/sock_send_length is 6.3, the bpf_rdonly_cast kfunc 6.2.
if [[ $(printf '%s\n%s\n' 6.3 "$kv" | sort -V | head -1) != 6.3 ]]; then
  problems+=("Linux >= 6.3 (the sock_send_length tracepoint, the bpf_rdonly_cast kfunc; docs/kernel.md); this is $kernel")
fi
[[ -r /sys/kernel/btf/vmlinux ]] || problems+=("kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y)")
[[ -e /proc/sys/kernel/unprivileged_bpf_disabled ]] || problems+=("the bpf() system call (CONFIG_BPF_SYSCALL=y)")
grep -q ' - cgroup2 ' /proc/self/mountinfo || problems+=("a mounted cgroup v2 hierarchy (mount -t cgroup2 none /sys/fs/cgroup/unified, or boot with systemd.unified_cgroup_hierarchy=1)")
[[ -e /proc/self/ns/net && -e /proc/self/ns/cgroup ]] || problems+=("network and cgroup namespaces (CONFIG_NET_NS, CONFIG_CGROUPS)")

if ((${#problems[@]})); then
  {
    echo "make test cannot run here; missing:"
    printf '  - %s\n' "${problems[@]}"
    if ((${#missing_pkgs[@]})); then
      echo "Install the packages with: sudo make deps   (or: apt-get install ${missing_pkgs[*]})"
    fi
  } >&2
  exit 1
fi
echo "preflight: ok (Go $(go env GOVERSION | sed 's/^go//'), Linux $kernel, BTF, cgroup v2, root, every tool the tests run)"
