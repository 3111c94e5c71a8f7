/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Acquires the "shared" network, prints its addresses, shows what an
 * unknown network gives, and releases.
 *
 * Build against an installed library:
 *     cc acquire.c $(pkg-config --cflags --libs vmnet-broker) -o acquire
 * Run with a broker listening (on Linux, the development socket; set
 * VMNET_BROKER_SOCKET to use another one).
 */

#include <vmnet-broker.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    vmnet_broker_return_t status;

    vmnet_broker_network *net = vmnet_broker_acquire("shared", &status);
    if (net == NULL) {
        fprintf(stderr, "cannot acquire shared: %s (%d)\n", vmnet_broker_strerror(status),
                (int)status);
        return 1;
    }
    const char *subnet = vmnet_broker_network_subnet(net);
    const char *mask = vmnet_broker_network_mask(net);
    printf("%s: mode %s, subnet %s, mask %s, ipv6 %s/%d\n", vmnet_broker_network_name(net),
           vmnet_broker_network_mode(net) ? vmnet_broker_network_mode(net) : "?",
           subnet ? subnet : "?", mask ? mask : "?",
           vmnet_broker_network_ipv6_prefix(net) ? vmnet_broker_network_ipv6_prefix(net) : "?",
           vmnet_broker_network_ipv6_prefix_length(net));

    int ok = subnet != NULL;

    vmnet_broker_network *missing = vmnet_broker_acquire("no-such-network", &status);
    printf("no-such-network: %s (%d)\n", vmnet_broker_strerror(status), (int)status);
    if (missing != NULL || status != VMNET_BROKER_NOT_FOUND ||
        strcmp(vmnet_broker_strerror(status), "Network name not found") != 0) {
        fprintf(stderr, "expected VMNET_BROKER_NOT_FOUND\n");
        ok = 0;
    }

    status = vmnet_broker_release(net);
    if (status != VMNET_BROKER_SUCCESS) {
        fprintf(stderr, "release: %s\n", vmnet_broker_strerror(status));
        ok = 0;
    }
    printf("released shared\n");
    return ok ? 0 : 1;
}
