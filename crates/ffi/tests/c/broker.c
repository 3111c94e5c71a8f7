/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The portable C API against a running broker. Usage: broker SOCKET_PATH.
 *
 * Checks that two clients share a network and the status report counts
 * both, that releasing and freeing drop holds, that a network outlives the
 * client that acquired it, and that the broker's errors come through.
 */

#include "vmnet-broker.h"

#include <stdio.h>
#include <string.h>

static int failures;
static int checks;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL: %s\n", what);
    }
}

/* Whether the status report lists `name` with `holders` holders. The report
 * is compact JSON with "holders" after the network's name. */
static int holders_are(const vmnet_broker_client *client, const char *name, int holders) {
    char *json = NULL;
    if (vmnet_broker_client_status_json(client, &json) != VMNET_BROKER_SUCCESS || json == NULL) {
        return 0;
    }
    char key[128];
    snprintf(key, sizeof(key), "{\"name\":\"%s\"", name);
    const char *entry = strstr(json, key);
    int ok;
    if (entry == NULL) {
        ok = holders == 0; /* removed: nobody holds it */
    } else {
        const char *h = strstr(entry, "\"holders\":");
        int n = -1;
        ok = h != NULL && sscanf(h, "\"holders\":%d", &n) == 1 && n == holders;
    }
    vmnet_broker_string_free(json);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    vmnet_broker_return_t status;
    vmnet_broker_client *a = vmnet_broker_client_connect_socket(argv[1], &status);
    vmnet_broker_client *b = vmnet_broker_client_connect_socket(argv[1], &status);
    if (a == NULL || b == NULL) {
        fprintf(stderr, "cannot connect to %s: %s\n", argv[1], vmnet_broker_strerror(status));
        return 1;
    }

    vmnet_broker_network *na = vmnet_broker_client_acquire(a, "shared", &status);
    check(na != NULL && status == VMNET_BROKER_SUCCESS, "a acquires shared");
    vmnet_broker_network *nb = vmnet_broker_client_acquire(b, "shared", &status);
    check(nb != NULL && status == VMNET_BROKER_SUCCESS, "b acquires shared");
    if (na == NULL || nb == NULL) {
        return 1;
    }
    check(strcmp(vmnet_broker_network_mode(na), "shared") == 0, "mode is shared");
    check(strcmp(vmnet_broker_network_subnet(na), vmnet_broker_network_subnet(nb)) == 0,
          "both see one subnet");
    check(vmnet_broker_network_mask(na) != NULL && vmnet_broker_network_ipv6_prefix(na) != NULL,
          "mask and IPv6 prefix are there");
    check(vmnet_broker_network_ipv6_prefix_length(na) > 0, "IPv6 prefix length");
    check(vmnet_broker_network_serialization_json(na) != NULL, "serialization as JSON");
    check(holders_are(a, "shared", 2), "status shows 2 holders");

    check(vmnet_broker_release(nb) == VMNET_BROKER_SUCCESS, "b releases");
    check(holders_are(a, "shared", 1), "status shows 1 holder after release");

    /* A network outlives its client: the connection stays open for it. */
    vmnet_broker_network *host = vmnet_broker_client_acquire(b, "host", &status);
    check(host != NULL, "b acquires host");
    vmnet_broker_client_free(b);
    check(holders_are(a, "host", 1), "host still held after freeing b");
    check(vmnet_broker_release(host) == VMNET_BROKER_SUCCESS, "release after client free");
    check(holders_are(a, "host", 0), "host released");

    /* Errors from the broker. */
    status = VMNET_BROKER_SUCCESS;
    check(vmnet_broker_client_acquire(a, "no-such-network", &status) == NULL &&
              status == VMNET_BROKER_NOT_FOUND,
          "no-such-network is NOT_FOUND");
    status = VMNET_BROKER_SUCCESS;
    check(vmnet_broker_client_acquire(a, "../etc/passwd", &status) == NULL &&
              status == VMNET_BROKER_NOT_FOUND,
          "a path is NOT_FOUND, as with the original broker");
    status = VMNET_BROKER_SUCCESS;
    check(vmnet_broker_client_acquire(a, "a b", &status) == NULL &&
              status == VMNET_BROKER_NOT_FOUND,
          "a name with a space is NOT_FOUND");
    status = VMNET_BROKER_SUCCESS;
    check(vmnet_broker_client_acquire(a, "", &status) == NULL && status == VMNET_BROKER_NOT_FOUND,
          "the empty name is NOT_FOUND");
    check(strcmp(vmnet_broker_strerror(status), "Network name not found") == 0,
          "strerror(NOT_FOUND) is the original's text");
    /* Invalid UTF-8 never reaches the broker. */
    status = VMNET_BROKER_SUCCESS;
    check(vmnet_broker_client_acquire(a, "\xff", &status) == NULL &&
              status == VMNET_BROKER_INVALID_REQUEST,
          "invalid UTF-8 is INVALID_REQUEST");
    char *json = (char *)"untouched";
    check(vmnet_broker_client_status_json(a, NULL) == VMNET_BROKER_INVALID_REQUEST,
          "status_json(NULL out)");
    check(strcmp(json, "untouched") == 0, "output untouched");

    check(vmnet_broker_release(na) == VMNET_BROKER_SUCCESS, "a releases");
    check(holders_are(a, "shared", 0), "shared released");
    vmnet_broker_client_free(a);

    printf("broker: %d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
