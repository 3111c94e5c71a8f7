/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The C library's side of the client contract (testdata/client-contract.json,
 * docs/client-contract.md): makes the requests a case names and prints what
 * each returned, for the runner in crates/ffi/tests/contract.rs to judge.
 *
 * Usage: contract API STEPS SOCKET_PATH
 *   API    client   vmnet_broker_client_connect_socket(), then requests on it
 *          acquire  the process-wide client of vmnet_broker_acquire()
 *                   (it finds the socket through VMNET_BROKER_SOCKET)
 *   STEPS  comma-separated: acquire, status (with API acquire: another
 *          acquire), wait (print "waiting" and read a line from stdin)
 *
 * Prints one line per request: "result STATUS SECONDS MESSAGE", MESSAGE
 * being vmnet_broker_last_error() ("-" after a success). Holds are kept
 * until the end; everything is freed before exiting, so that valgrind can
 * vouch for the library.
 */

#define _POSIX_C_SOURCE 200809L

#include "vmnet-broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HOLDS 16

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(vmnet_broker_return_t status, double started) {
    const char *message = vmnet_broker_last_error();
    printf("result %d %.3f %s\n", (int)status, now() - started,
           status == VMNET_BROKER_SUCCESS || message == NULL ? "-" : message);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "client") != 0 && strcmp(argv[1], "acquire") != 0)) {
        fprintf(stderr, "usage: %s client|acquire STEPS SOCKET_PATH\n", argv[0]);
        return 2;
    }
    int process_wide = strcmp(argv[1], "acquire") == 0;
    const char *socket_path = argv[3];
    char *steps = strdup(argv[2]);
    if (steps == NULL) {
        return 2;
    }

    vmnet_broker_client *client = NULL;
    vmnet_broker_network *holds[MAX_HOLDS];
    int held = 0;
    char *save = NULL;
    for (char *step = strtok_r(steps, ",", &save); step != NULL; step = strtok_r(NULL, ",", &save)) {
        if (strcmp(step, "wait") == 0) {
            printf("waiting\n");
            fflush(stdout);
            char line[16];
            if (fgets(line, sizeof(line), stdin) == NULL) {
                break;
            }
            continue;
        }
        int is_acquire = strcmp(step, "acquire") == 0 || process_wide;
        if (!is_acquire && strcmp(step, "status") != 0) {
            fprintf(stderr, "unknown step %s\n", step);
            free(steps);
            return 2;
        }
        double started = now();
        vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
        if (!process_wide && client == NULL) {
            client = vmnet_broker_client_connect_socket(socket_path, &status);
            if (client == NULL) {
                report(status, started);
                continue;
            }
        }
        if (is_acquire) {
            vmnet_broker_network *network =
                process_wide ? vmnet_broker_acquire("shared", &status)
                             : vmnet_broker_client_acquire(client, "shared", &status);
            if (network != NULL) {
                if (held < MAX_HOLDS) {
                    holds[held++] = network;
                } else {
                    vmnet_broker_release(network);
                }
            }
        } else {
            char *json = NULL;
            status = vmnet_broker_client_status_json(client, &json);
            vmnet_broker_string_free(json);
        }
        report(status, started);
    }
    for (int i = 0; i < held; i++) {
        vmnet_broker_release(holds[i]);
    }
    vmnet_broker_client_free(client);
    free(steps);
    return 0;
}
