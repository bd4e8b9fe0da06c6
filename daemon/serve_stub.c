/* serve_stub.c — placeholder until the daemon lands: says so and fails. */
#include <stdio.h>

#include "daemon/cmd.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vaed serve: the daemon is not built yet\n");
    return 1;
}
