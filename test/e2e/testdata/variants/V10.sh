# V10 ESC-006 with perl IO::Socket::UNIX to a containerd socket
python3 "$H/decoy_sock.py" /run/simrt/v10/containerd.sock > "$H/decoy-v10.log" 2>&1 &
echo $! > "$H/decoy-v10.pid"; until [ -S /run/simrt/v10/containerd.sock ]; do sleep 0.2; done
ctr_run simctr-infer-v10 ctr-infer --mount -- perl -MIO::Socket::UNIX -e '
my $s = IO::Socket::UNIX->new(Peer => "/run/simrt/v10/containerd.sock") or die "connect: $!";
print $s "GET /version HTTP/1.0\r\n\r\n"; my $l = <$s>; print "containerd: $l";'
kill "$(cat "$H/decoy-v10.pid")"; cat "$H/decoy-v10.log"
