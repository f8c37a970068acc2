/* bs_keygen FILE: create a local master key file (tests and `make demo`;
 * the daemon's own `brokerside keygen` does the same). Exit 0 on success,
 * 1 with the reason on stderr otherwise, 2 on bad usage. */
#include <stdio.h>

#include "brokerside/keyring.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bs_keygen FILE\n");
        return 2;
    }
    char err[256] = "";
    if (bs_keyring_local_keygen(argv[1], err, sizeof err) != BS_OK) {
        fprintf(stderr, "bs_keygen: %s: %s\n", argv[1], err);
        return 1;
    }
    return 0;
}
