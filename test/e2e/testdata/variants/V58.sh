# V58 ESC-006 through a hard link to the runtime socket under an innocuous name (sockets can be hard-linked)
python3 "$H/decoy_sock.py" /run/simrt/v58/docker.sock > "$H/decoy-v58.log" 2>&1 &
echo $! > "$H/decoy-v58.pid"; until [ -S /run/simrt/v58/docker.sock ]; do sleep 0.2; done
mkdir -p /run/simrt/v58-cache; ln -f /run/simrt/v58/docker.sock /run/simrt/v58-cache/blob
ctr_run simctr-infer-v58 ctr-infer --mount -- perl -MIO::Socket::UNIX -e '
my $s = IO::Socket::UNIX->new(Peer => "/run/simrt/v58-cache/blob") or die "connect: $!";
print $s "GET /containers/json HTTP/1.0\r\n\r\n"; print scalar <$s>;'
kill "$(cat "$H/decoy-v58.pid")"
