/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The original C client API's side of the client contract
 * (testdata/client-contract.json, docs/client-contract.md) over XPC: every
 * request is vmnet_broker_acquire_network("shared"), as the original's users
 * make it, and the runner in crates/ffi/tests/contract.rs judges what it
 * printed. Built on Linux against the fakes of libxpc (crates/fake-apple-c,
 * with -DVMNET_BROKER_FAKE_XPC) and linked with the Swift package's C target
 * (swift/Sources/vmnet_broker/client.c) by scripts/test-fake-clients.
 *
 * Usage: contract_upstream xpc-upstream STEPS SERVICE
 *   STEPS  comma-separated: acquire, status (both are an acquire here),
 *          wait (print "waiting" and read a line from stdin)
 *   SERVICE is not used: the API always asks MACH_SERVICE_NAME.
 *
 * Prints one line per request: "result STATUS SECONDS MESSAGE", MESSAGE
 * being vmnet_broker_last_error() ("-" after a success). Every serialization
 * is released before exiting, so that valgrind and the fakes' leak report
 * can vouch for the library.
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

int main(int argc, char **argv) {
    if (argc != 4 || strcmp(argv[1], "xpc-upstream") != 0) {
        fprintf(stderr, "usage: %s xpc-upstream STEPS SERVICE\n", argv[0]);
        return 2;
    }
    char *steps = strdup(argv[2]);
    if (steps == NULL) {
        return 2;
    }
    xpc_object_t holds[MAX_HOLDS];
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
        double started = now();
        vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
        xpc_object_t network = vmnet_broker_acquire_network("shared", &status);
        const char *message = vmnet_broker_last_error();
        printf("result %d %.3f %s\n", (int)status, now() - started,
               network != NULL || message == NULL ? "-" : message);
        fflush(stdout);
        if (network != NULL) {
            if (held < MAX_HOLDS) {
                holds[held++] = network;
            } else {
                xpc_release(network);
            }
        }
    }
    for (int i = 0; i < held; i++) {
        xpc_release(holds[i]);
    }
    free(steps);
    return 0;
}
