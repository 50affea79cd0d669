/* bench.c — `fiftyx bench` (in progress). */
#include <stdio.h>
#include "cli.h"
#include "harness.h"

int fx_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fx_die(1, "bench: not implemented yet");
}
