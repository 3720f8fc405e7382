/* Harmless GPU-miner stand-in: opens NVIDIA device nodes, grabs GPU memory through the
   driver API if libcuda is present (so NVML lists it), and sends a stratum-style login. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *dev[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia0"};
    for (int i = 0; i < 3; i++) { int fd = open(dev[i], O_RDWR); if (fd >= 0) close(fd); }
    void *cu = dlopen("libcuda.so.1", RTLD_NOW);
    if (cu) {
        int (*init)(unsigned) = dlsym(cu, "cuInit");
        int (*get)(int *, int) = dlsym(cu, "cuDeviceGet");
        int (*ctx)(void **, unsigned, int) = dlsym(cu, "cuCtxCreate_v2");
        int (*alloc)(unsigned long long *, size_t) = dlsym(cu, "cuMemAlloc_v2");
        int d; void *c; unsigned long long p;
        if (init && get && ctx && alloc && !init(0) && !get(&d, 0) && !ctx(&c, 0, d))
            printf("cuMemAlloc rc=%d\n", alloc(&p, 256u << 20));
    }
    const char *host = argc > 1 ? argv[1] : "10.200.2.2";
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(3333)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
        const char *login = "{\"id\":1,\"method\":\"login\",\"params\":{\"login\":\"x\",\"agent\":\"XMRig/6.21.0\"}}\n";
        write(s, login, strlen(login));
    }
    fflush(stdout);
    sleep(argc > 2 ? 20 : 5);
    return 0;
}
