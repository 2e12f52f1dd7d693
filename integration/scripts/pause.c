/* pause.c - the pod sandbox's init for the CRI end-to-end tests (what Kubernetes' pause
 * does): sleep until SIGINT/SIGTERM (exit 0), reaping any child re-parented to it.
 * Built static by make-pause-image.sh. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &q, NULL) < 0 || sigaction(SIGTERM, &q, NULL) < 0 ||
      sigaction(SIGCHLD, &r, NULL) < 0)
    return 1;
  for (;;)
    pause();
}
