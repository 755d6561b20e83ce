/*
 * A player in C: one request, then a WebSocket session that sends a message every 20 ms and
 * counts the echoes, through whatever the router does meanwhile (a drain, a deploy): the SDK
 * reconnects and resumes the session, the player only reads events.
 *
 *   cc -o player examples/player.c -Iinclude target/debug/libswitchyard_ffi.a -lpthread -ldl -lm
 *   ./player http://127.0.0.1:8080 200
 *
 * Exit status 0 when every message came back, 1 otherwise. Prints `connected backend=ID` when
 * the session is up (a test drains that backend then).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchyard.h"

static int failed(const char *what, sy_error *err) {
    fprintf(stderr, "%s: %s (kind %d%s)\n", what, sy_error_message(err), sy_error_kind(err),
            sy_error_retryable(err) ? ", retryable" : "");
    sy_error_free(err);
    return 1;
}

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROUTER_URL MESSAGES\n", argv[0]);
        return 2;
    }
    int total = atoi(argv[2]);
    char config[512];
    snprintf(config, sizeof config,
             "{\"regions\": [{\"name\": \"local\", \"endpoints\": [\"%s\"]}], \"deadline\": \"30s\"}",
             argv[1]);

    sy_error *err = NULL;
    sy_client *client = sy_client_new(config, &err);
    if (!client) return failed("sy_client_new", err);

    /* One request, with a header. */
    sy_header headers[] = {{"x-player", "c-example"}};
    sy_response *resp = NULL;
    if (sy_request(client, "GET", "/api/titles", headers, 1, NULL, 0, 5000, &resp, &err) != SY_OK) {
        sy_client_free(client);
        return failed("GET /api/titles", err);
    }
    size_t len = 0;
    sy_response_body(resp, &len);
    const char *backend = sy_response_backend(resp);
    printf("GET /api/titles: %u, %zu bytes from %s\n", sy_response_status(resp), len,
           backend ? backend : "-");
    sy_response_free(resp);

    /* A session through whatever happens: count the echoes. */
    sy_session *session = sy_session_open(client, "/ws/echo", &err);
    if (!session) {
        sy_client_free(client);
        return failed("sy_session_open", err);
    }
    char *seen = calloc((size_t)total, 1);
    int sent = 0, echoed = 0, reconnects = 0, resumed = 0, closed = 0;
    long deadline = now_ms() + 60000, next_send = now_ms();
    while (echoed < total && !closed && now_ms() < deadline) {
        if (sent < total && now_ms() >= next_send) {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "m-%d", sent);
            if (sy_session_send(session, SY_MESSAGE_TEXT, (const uint8_t *)msg, (size_t)n, &err) != SY_OK) {
                failed("sy_session_send", err);
                break;
            }
            sent++;
            next_send = now_ms() + 20;
        }
        sy_event *event = NULL;
        int rc = sy_session_next_event(session, 20, &event, &err);
        if (rc == SY_ERR_TIMEOUT) {
            sy_error_free(err);
            continue;
        }
        if (rc != SY_OK) {
            failed("sy_session_next_event", err);
            break;
        }
        if (!event) break; /* the session is over */
        switch (sy_event_kind(event)) {
        case SY_EVENT_CONNECTED:
            printf("connected backend=%s\n", sy_event_backend(event) ? sy_event_backend(event) : "-");
            fflush(stdout);
            break;
        case SY_EVENT_MESSAGE: {
            size_t n = 0;
            const uint8_t *data = sy_event_data(event, &n);
            /* The echo backend answers "<backend>: m-<i>"; the data is not NUL-terminated. */
            char text[128];
            size_t k = n < sizeof text - 1 ? n : sizeof text - 1;
            memcpy(text, data, k);
            text[k] = 0;
            const char *at = strstr(text, ": m-");
            if (at) {
                int i = atoi(at + 4);
                if (i >= 0 && i < total && !seen[i]) {
                    seen[i] = 1;
                    echoed++;
                }
            }
            break;
        }
        case SY_EVENT_RECONNECTING:
            reconnects++;
            printf("reconnecting: code %u, %s, in %llu ms\n", sy_event_close_code(event),
                   sy_event_text(event), (unsigned long long)sy_event_delay_ms(event));
            break;
        case SY_EVENT_RESUMED:
            resumed++;
            printf("resumed on %s (%s, %llu re-sent)\n",
                   sy_event_backend(event) ? sy_event_backend(event) : "-",
                   sy_event_recovered(event) ? "nothing missing" : "some messages may be missing",
                   (unsigned long long)sy_event_count(event));
            fflush(stdout);
            break;
        case SY_EVENT_UNCONFIRMED:
            printf("%zu message(s) unconfirmed\n", sy_event_message_count(event));
            break;
        case SY_EVENT_CLOSED:
            printf("closed: %u %s\n", sy_event_close_code(event), sy_event_text(event));
            closed = 1;
            break;
        default:
            break;
        }
        sy_event_free(event);
    }
    if (sy_session_close(session, &err) != SY_OK) failed("sy_session_close", err);
    sy_client_free(client);
    free(seen);
    printf("played %d of %d messages; %d reconnect(s), %d resumed\n", echoed, total, reconnects, resumed);
    return echoed == total ? 0 : 1;
}
