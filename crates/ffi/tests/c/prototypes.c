/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Proves that include/vmnet-broker.h and libvmnet_broker agree: every
 * function is assigned to a pointer of the exact prototype we promise (a
 * mismatch fails to compile with -Werror), and taking each address makes the
 * linker resolve it in the library (a missing export fails to link). The
 * constants are checked against their documented values at compile time.
 */

#include "vmnet-broker.h"

#include <stdio.h>
#include <string.h>

#define CHECK_CONST(expr) _Static_assert(expr, #expr)

CHECK_CONST(VMNET_BROKER_SUCCESS == 0);
CHECK_CONST(VMNET_BROKER_XPC_FAILURE == 1);
CHECK_CONST(VMNET_BROKER_INVALID_REPLY == 2);
CHECK_CONST(VMNET_BROKER_NOT_ALLOWED == 3);
CHECK_CONST(VMNET_BROKER_INVALID_REQUEST == 4);
CHECK_CONST(VMNET_BROKER_NOT_FOUND == 5);
CHECK_CONST(VMNET_BROKER_CREATE_FAILURE == 6);
CHECK_CONST(VMNET_BROKER_INTERNAL_ERROR == 7);
CHECK_CONST(sizeof(vmnet_broker_return_t) == sizeof(int));

struct entry {
    const char *name;
    void (*fn)(void);
};

#define ENTRY(f) {#f, (void (*)(void))f}

int main(void) {
    /* The original C client's API. */
    const char *(*strerror_fn)(vmnet_broker_return_t) = vmnet_broker_strerror;
#ifdef __APPLE__
    xpc_object_t (*acquire_network_fn)(const char *, vmnet_broker_return_t *) =
        vmnet_broker_acquire_network;
    xpc_object_t (*serialization_fn)(const vmnet_broker_network *) =
        vmnet_broker_network_serialization;
#endif

    /* The portable API. */
    vmnet_broker_network *(*acquire_fn)(const char *, vmnet_broker_return_t *) =
        vmnet_broker_acquire;
    vmnet_broker_return_t (*release_fn)(vmnet_broker_network *) = vmnet_broker_release;
    const char *(*name_fn)(const vmnet_broker_network *) = vmnet_broker_network_name;
    const char *(*mode_fn)(const vmnet_broker_network *) = vmnet_broker_network_mode;
    const char *(*subnet_fn)(const vmnet_broker_network *) = vmnet_broker_network_subnet;
    const char *(*mask_fn)(const vmnet_broker_network *) = vmnet_broker_network_mask;
    const char *(*ipv6_prefix_fn)(const vmnet_broker_network *) =
        vmnet_broker_network_ipv6_prefix;
    int (*ipv6_prefix_length_fn)(const vmnet_broker_network *) =
        vmnet_broker_network_ipv6_prefix_length;
    const char *(*serialization_json_fn)(const vmnet_broker_network *) =
        vmnet_broker_network_serialization_json;
    vmnet_broker_client *(*connect_fn)(vmnet_broker_return_t *) = vmnet_broker_client_connect;
    vmnet_broker_client *(*connect_socket_fn)(const char *, vmnet_broker_return_t *) =
        vmnet_broker_client_connect_socket;
    void (*client_free_fn)(vmnet_broker_client *) = vmnet_broker_client_free;
    vmnet_broker_return_t (*set_timeout_fn)(const vmnet_broker_client *, double) =
        vmnet_broker_client_set_timeout;
    vmnet_broker_network *(*client_acquire_fn)(const vmnet_broker_client *, const char *,
                                               vmnet_broker_return_t *) =
        vmnet_broker_client_acquire;
    vmnet_broker_return_t (*status_json_fn)(const vmnet_broker_client *, char **) =
        vmnet_broker_client_status_json;
    void (*string_free_fn)(char *) = vmnet_broker_string_free;
    const char *(*last_error_fn)(void) = vmnet_broker_last_error;

    struct entry entries[] = {
        ENTRY(strerror_fn),
#ifdef __APPLE__
        ENTRY(acquire_network_fn),
        ENTRY(serialization_fn),
#endif
        ENTRY(acquire_fn),
        ENTRY(release_fn),
        ENTRY(name_fn),
        ENTRY(mode_fn),
        ENTRY(subnet_fn),
        ENTRY(mask_fn),
        ENTRY(ipv6_prefix_fn),
        ENTRY(ipv6_prefix_length_fn),
        ENTRY(serialization_json_fn),
        ENTRY(connect_fn),
        ENTRY(connect_socket_fn),
        ENTRY(client_free_fn),
        ENTRY(set_timeout_fn),
        ENTRY(client_acquire_fn),
        ENTRY(status_json_fn),
        ENTRY(string_free_fn),
        ENTRY(last_error_fn),
    };

    int failures = 0;
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        if (entries[i].fn == NULL) {
            fprintf(stderr, "%s is NULL\n", entries[i].name);
            failures++;
        }
    }

    /* The request and reply keys are those of the wire protocol. */
    if (strcmp(MACH_SERVICE_NAME, "com.github.nirs.vmnet-broker") != 0 ||
        strcmp(REQUEST_COMMAND, "command") != 0 ||
        strcmp(REQUEST_NETWORK_NAME, "network_name") != 0 ||
        strcmp(COMMAND_ACQUIRE, "acquire") != 0 || strcmp(REPLY_NETWORK, "network") != 0 ||
        strcmp(REPLY_ERROR, "error") != 0) {
        fprintf(stderr, "a protocol define has the wrong value\n");
        failures++;
    }

    printf("prototypes: %zu functions checked, %d failures\n",
           sizeof(entries) / sizeof(entries[0]), failures);
    return failures == 0 ? 0 : 1;
}
