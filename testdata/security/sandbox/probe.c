/* Tries the system calls a container must not make and prints one line each:
 * "<name> ok" or "<name> errno <n>". Built static by tests/security/sandbox.rs
 * (cc -static), so it runs in the busybox image. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void say(const char *name, long r) {
    if (r < 0)
        printf("%s errno %d\n", name, errno);
    else
        printf("%s ok\n", name);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        errno = 0;
        if (!strcmp(a, "keyctl"))
            say(a, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
        else if (!strcmp(a, "add_key"))
            say(a, syscall(SYS_add_key, "user", "rbuild-probe", "x", 1, KEY_SPEC_SESSION_KEYRING));
        else if (!strcmp(a, "unshare-user"))
            say(a, unshare(CLONE_NEWUSER));
        else if (!strcmp(a, "unshare-net"))
            say(a, unshare(CLONE_NEWNET));
        else if (!strcmp(a, "personality"))
            say(a, personality(READ_IMPLIES_EXEC));
        else if (!strcmp(a, "io_uring_setup"))
            say(a, syscall(SYS_io_uring_setup, 1, NULL));
        else if (!strcmp(a, "bpf"))
            say(a, syscall(SYS_bpf, 0, NULL, 0));
        else if (!strcmp(a, "perf_event_open"))
            say(a, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        else if (!strcmp(a, "raw-socket"))
            say(a, socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
        else if (!strcmp(a, "fork")) {
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            say(a, p);
        } else
            printf("%s unknown\n", a);
    }
    return 0;
}
