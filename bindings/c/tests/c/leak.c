/*
 * Forgets to free a response and an error: valgrind must see both as lost (the test that runs
 * it expects memcheck to fail), so a leak in a real program cannot hide behind the library's
 * registry of live handles.
 *
 *   leak ROUTER_URL
 */
#include <stdio.h>

#include "switchyard.h"

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char config[256];
    snprintf(config, sizeof config, "{\"regions\": [{\"name\": \"local\", \"endpoints\": [\"%s\"]}]}", argv[1]);
    sy_client *client = sy_client_new(config, NULL);
    sy_response *resp = NULL;
    sy_error *err = NULL;
    if (sy_request(client, "GET", "/", NULL, 0, NULL, 0, 0, &resp, &err) != SY_OK) return 1;
    sy_request(client, NULL, "/", NULL, 0, NULL, 0, 0, &resp, &err); /* an error, never freed */
    sy_client_free(client);
    return 0; /* the first response and the error are leaked on purpose */
}
