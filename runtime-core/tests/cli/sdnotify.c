/* sdnotify MESSAGE: send MESSAGE ("\n" escapes become newlines) as one datagram to
 * $NOTIFY_SOCKET, like systemd-notify. Built statically by the notify tests and
 * mounted into a busybox container, whose nc cannot speak AF_UNIX. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (argc != 2 || !path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "usage: NOTIFY_SOCKET=PATH sdnotify MESSAGE\n");
        return 2;
    }
    char msg[4096];
    size_t n = 0;
    for (const char *p = argv[1]; *p && n < sizeof msg - 1; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            msg[n++] = '\n';
            p++;
        } else {
            msg[n++] = *p;
        }
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, n, 0, (struct sockaddr *)&sa,
                         offsetof(struct sockaddr_un, sun_path) + strlen(path)) < 0) {
        perror("sdnotify");
        return 1;
    }
    return 0;
}
