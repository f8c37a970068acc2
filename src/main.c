/* main.c - placeholder until the daemon lands. */
#include <stdio.h>
#include "brokerside/version.h"
int main(void)
{
    printf("brokerside %s\n", BS_VERSION);
    return 0;
}
