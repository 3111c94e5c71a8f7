/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Runs the shared protocol vectors (testdata/protocol-vectors.json) through
 * the C API:
 *
 *  - "statuses": vmnet_broker_strerror() gives each "strerror" text (the
 *    original C client's, byte for byte);
 *  - "replies": a fake broker in a thread answers one acquire with the
 *    vector's reply, and the status the C API reports must be the expected
 *    one (unknown codes kept as they are).
 *
 * The vectors come from vectors.h, generated from the JSON file by
 * scripts/test-c. Also checks that NULL arguments are refused without
 * crashing. Usage: vectors SOCKET_PATH (a path that does not exist yet).
 */

#include "vmnet-broker.h"
#include "vectors.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int failures;
static int checks;

static void check(int ok, const char *what, const char *detail) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL: %s: %s\n", what, detail);
    }
}

static int listener;

/* Reads one line from fd into buf; returns 0 at end of file. */
static int read_line(int fd, char *buf, size_t size) {
    size_t n = 0;
    while (n + 1 < size) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r <= 0) {
            return 0;
        }
        if (c == '\n') {
            break;
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 1;
}

static void write_line(int fd, const char *text) {
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        perror("fake broker: write");
    }
}

/* Answers the first request of the i-th connection with the i-th reply
 * vector, and any later request (the release) with {}. */
static void *fake_broker(void *arg) {
    (void)arg;
    for (size_t i = 0; i < COUNT(reply_vectors); i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) {
            perror("fake broker: accept");
            return NULL;
        }
        char line[4096];
        int first = 1;
        while (read_line(fd, line, sizeof(line))) {
            write_line(fd, first ? reply_vectors[i].reply : "{}");
            first = 0;
        }
        close(fd);
    }
    return NULL;
}

static void check_statuses(void) {
    for (size_t i = 0; i < COUNT(status_vectors); i++) {
        const char *text = vmnet_broker_strerror((vmnet_broker_return_t)status_vectors[i].code);
        char what[64];
        snprintf(what, sizeof(what), "strerror(%d)", status_vectors[i].code);
        check(text != NULL && strcmp(text, status_vectors[i].strerror_text) == 0, what,
              text ? text : "NULL");
    }
}

static void check_replies(const char *path) {
    for (size_t i = 0; i < COUNT(reply_vectors); i++) {
        const struct reply_vector *v = &reply_vectors[i];
        vmnet_broker_return_t status = 12345;
        vmnet_broker_client *client = vmnet_broker_client_connect_socket(path, &status);
        if (client == NULL) {
            check(0, v->name, "cannot connect to the fake broker");
            return;
        }
        status = 12345;
        vmnet_broker_network *net = vmnet_broker_client_acquire(client, "shared", &status);
        char detail[128];
        snprintf(detail, sizeof(detail), "status %d, expected %d", (int)status, v->expect_status);
        check((int)status == v->expect_status, v->name, detail);
        check((net != NULL) == (v->expect_status == 0), v->name, "handle iff success");
        if (net != NULL) {
            const char *subnet = vmnet_broker_network_subnet(net);
            if (v->expect_subnet != NULL) {
                check(subnet != NULL && strcmp(subnet, v->expect_subnet) == 0, v->name,
                      subnet ? subnet : "no subnet");
            } else {
                check(subnet == NULL && vmnet_broker_network_ipv6_prefix_length(net) == -1,
                      v->name, "no network_info means no addresses");
            }
            check(strcmp(vmnet_broker_network_name(net), "shared") == 0, v->name, "name");
            check(vmnet_broker_release(net) == VMNET_BROKER_SUCCESS, v->name, "release");
        }
        vmnet_broker_client_free(client);
    }
}

static void check_null_arguments(void) {
    vmnet_broker_return_t status = 12345;
    check(vmnet_broker_acquire(NULL, &status) == NULL && status == VMNET_BROKER_INVALID_REQUEST,
          "acquire(NULL)", "not refused");
    status = 12345;
    check(vmnet_broker_client_acquire(NULL, "shared", &status) == NULL &&
              status == VMNET_BROKER_INVALID_REQUEST,
          "client_acquire(NULL client)", "not refused");
    status = 12345;
    check(vmnet_broker_client_connect_socket(NULL, &status) == NULL &&
              status == VMNET_BROKER_INVALID_REQUEST,
          "connect_socket(NULL)", "not refused");
    char *json = (char *)"untouched";
    check(vmnet_broker_client_status_json(NULL, &json) == VMNET_BROKER_INVALID_REQUEST &&
              strcmp(json, "untouched") == 0,
          "status_json(NULL client)", "not refused, or output written");
    check(vmnet_broker_release(NULL) == VMNET_BROKER_SUCCESS, "release(NULL)", "not a no-op");
    vmnet_broker_client_free(NULL);
    vmnet_broker_string_free(NULL);
    check(vmnet_broker_network_name(NULL) == NULL && vmnet_broker_network_mode(NULL) == NULL &&
              vmnet_broker_network_subnet(NULL) == NULL &&
              vmnet_broker_network_mask(NULL) == NULL &&
              vmnet_broker_network_ipv6_prefix(NULL) == NULL &&
              vmnet_broker_network_serialization_json(NULL) == NULL &&
              vmnet_broker_network_ipv6_prefix_length(NULL) == -1,
          "accessors(NULL)", "not NULL / -1");
    /* A missing socket is a transport failure. */
    status = 12345;
    check(vmnet_broker_client_connect_socket("/nonexistent/vmnet-broker.sock", &status) == NULL &&
              status == VMNET_BROKER_XPC_FAILURE,
          "connect_socket(missing)", "not XPC_FAILURE");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "socket path too long\n");
        return 2;
    }
    strcpy(addr.sun_path, path);
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(listener, 8) != 0) {
        perror("fake broker: listen");
        return 2;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, fake_broker, NULL) != 0) {
        fprintf(stderr, "cannot start the fake broker\n");
        return 2;
    }

    check_statuses();
    check_replies(path);
    check_null_arguments();

    pthread_join(thread, NULL);
    close(listener);
    unlink(path);
    printf("vectors: %d checks, %zu reply vectors, %zu status vectors\n", checks,
           COUNT(reply_vectors), COUNT(status_vectors));
    printf("vectors: %d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
