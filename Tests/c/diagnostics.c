/*
 * diagnostics.c - why a call failed, as a C caller of libd3dkmt learns it:
 * D3DKMTLinuxGetLastFailure (the calling thread's last failure: call, status,
 * reason; sizes, truncation, per thread) and the D3DKMT_DEBUG reports on
 * stderr (unset: none; 1: each failing call; calls: every call), read from a
 * re-executed copy of this program with the variable set.
 *
 * Output: "N passed, M failed" as the last line; exit status 0 only if nothing
 * failed.
 */
#define _GNU_SOURCE
#include "support/kmt_test.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOGUS_ADAPTER 0xC0000040u /* a local handle's shape, naming nothing */

/* One failing call (closing an adapter that is not open), then one that succeeds. */
static void failing_then_succeeding(void)
{
    D3DKMT_CLOSEADAPTER close_bogus = { .hAdapter = BOGUS_ADAPTER };
    (void)D3DKMTCloseAdapter(&close_bogus);
    D3DKMT_ENUMADAPTERS2 count = { 0 };
    (void)D3DKMTEnumAdapters2(&count);
}

/* Runs this program as "report" with D3DKMT_DEBUG set to `value` (NULL: unset) and returns
 * what it wrote on stderr (malloc'd, NUL-terminated). */
static char *reports_with(const char *argv0, const char *value)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return strdup("");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 2);
        if (value)
            setenv("D3DKMT_DEBUG", value, 1);
        else
            unsetenv("D3DKMT_DEBUG");
        execl(argv0, argv0, "report", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    size_t size = 0, capacity = 4096;
    char *text = malloc(capacity);
    for (;;) {
        if (size + 1 >= capacity)
            text = realloc(text, capacity *= 2);
        ssize_t got = read(out[0], text + size, capacity - size - 1);
        if (got <= 0)
            break;
        size += (size_t)got;
    }
    text[size] = 0;
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "report child (D3DKMT_DEBUG=%s) exited with 0x%x",
          value ? value : "(unset)", status);
    return text;
}

static void *fail_on_another_thread(void *unused)
{
    (void)unused;
    D3DKMT_DESTROYDEVICE destroy = { .hDevice = BOGUS_ADAPTER };
    (void)D3DKMTDestroyDevice(&destroy);
    char message[256];
    UINT length = D3DKMTLinuxGetLastFailure(message, sizeof message);
    check(length > 0 && strstr(message, "D3DKMTDestroyDevice failed") != NULL,
          "the other thread's last failure: \"%s\"", message);
    return NULL;
}

static void test_last_failure(void)
{
    phase("last failure");
    char message[512];
    CHECK(D3DKMTLinuxGetLastFailure(NULL, 0) == 0, "a thread with no failure has a message");
    memset(message, 'x', sizeof message);
    CHECK(D3DKMTLinuxGetLastFailure(message, sizeof message) == 0 && message[0] == 0,
          "no failure yet: the buffer is not an empty string");

    failing_then_succeeding();
    UINT length = D3DKMTLinuxGetLastFailure(NULL, 0);
    UINT written = D3DKMTLinuxGetLastFailure(message, sizeof message);
    CHECK(length > 0 && written == length && strlen(message) == length,
          "length %u, written %u, strlen %zu", length, written, strlen(message));
    /* The success after the failure leaves it in place; the message names call, status, reason. */
    CHECK(strstr(message, "D3DKMTCloseAdapter failed: STATUS_INVALID_PARAMETER (0xC000000D): ") == message,
          "message \"%s\"", message);
    CHECK(strstr(message, "hAdapter") != NULL, "the reason is missing from \"%s\"", message);

    char small[8];
    CHECK(D3DKMTLinuxGetLastFailure(small, sizeof small) == length && strlen(small) == sizeof small - 1 &&
              strncmp(small, message, sizeof small - 1) == 0,
          "cut to 8 bytes: \"%s\"", small);

    /* Per thread: another thread's failure is its own. */
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, fail_on_another_thread, NULL) == 0, "pthread_create");
    pthread_join(thread, NULL);
    char again[512];
    D3DKMTLinuxGetLastFailure(again, sizeof again);
    CHECK(strcmp(again, message) == 0, "another thread's failure changed this thread's: \"%s\"", again);
}

static void test_debug_reports(const char *argv0)
{
    phase("D3DKMT_DEBUG");
    char *none = reports_with(argv0, NULL);
    CHECK(none[0] == 0, "D3DKMT_DEBUG unset, yet stderr got \"%s\"", none);
    char *failures = reports_with(argv0, "1");
    CHECK(strstr(failures, "d3dkmt: D3DKMTCloseAdapter -> STATUS_INVALID_PARAMETER (0xC000000D): ") != NULL,
          "D3DKMT_DEBUG=1: no report of the failing call in \"%s\"", failures);
    CHECK(strstr(failures, "D3DKMTEnumAdapters2") == NULL, "D3DKMT_DEBUG=1 reported a call that succeeded");
    char *calls = reports_with(argv0, "calls");
    CHECK(strstr(calls, "d3dkmt: D3DKMTCloseAdapter -> STATUS_INVALID_PARAMETER") != NULL &&
              strstr(calls, "d3dkmt: D3DKMTEnumAdapters2 -> STATUS_SUCCESS (0x0)") != NULL,
          "D3DKMT_DEBUG=calls: \"%s\"", calls);
    /* With each call's arguments: the struct's fields (the bogus adapter handle, in decimal). */
    CHECK(strstr(calls, "hAdapter: 3221225536") != NULL, "D3DKMT_DEBUG=calls shows no arguments: \"%s\"", calls);
    free(none);
    free(failures);
    free(calls);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "report") == 0) {
        failing_then_succeeding();
        return 0;
    }
    test_start(argc, argv, 60);
    test_last_failure();
    test_debug_reports(argv[0]);
    return test_finish();
}
