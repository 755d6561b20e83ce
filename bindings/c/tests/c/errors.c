/*
 * Every error path of the C ABI, against a live router: each bad input gets its error kind and
 * a message, never a crash; nothing leaks (run under valgrind by tests/c_programs.rs).
 *
 *   errors ROUTER_URL DEAD_URL
 *
 * Prints one line per check; exit status 1 if any check failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchyard.h"

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) failures++;
}

/* The call returned `want` and left an error of that kind, with a message holding `says`. */
static void expect(int rc, sy_error *err, int want, const char *says, const char *what) {
    int ok = rc == want && err != NULL && sy_error_kind(err) == want;
    const char *msg = err ? sy_error_message(err) : NULL;
    ok = ok && msg != NULL && (says == NULL || strstr(msg, says) != NULL);
    printf("%s %s -> %d: %s\n", ok ? "ok  " : "FAIL", what, rc, msg ? msg : "(no error)");
    if (!ok) failures++;
    sy_error_free(err);
}

static sy_client *client_for(const char *url) {
    char config[512];
    snprintf(config, sizeof config,
             "{\"regions\": [{\"name\": \"local\", \"endpoints\": [\"%s\"]}], \"deadline\": \"3s\"}",
             url);
    sy_error *err = NULL;
    sy_client *c = sy_client_new(config, &err);
    if (!c) {
        printf("FAIL client for %s: %s\n", url, sy_error_message(err));
        sy_error_free(err);
        exit(1);
    }
    return c;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s ROUTER_URL DEAD_URL\n", argv[0]);
        return 2;
    }
    sy_error *err = NULL;
    sy_response *resp = NULL;

    /* Configuration. */
    check(sy_client_new(NULL, &err) == NULL, "sy_client_new(NULL) is NULL");
    expect(SY_ERR_INVALID, err, SY_ERR_INVALID, "config_json is NULL", "NULL config");
    err = NULL;
    check(sy_client_new("{", &err) == NULL, "malformed JSON is NULL");
    expect(SY_ERR_CONFIG, err, SY_ERR_CONFIG, "JSON", "malformed JSON");
    err = NULL;
    check(sy_client_new("{\"deadline\": \"soon\"}", &err) == NULL, "a bad value is NULL");
    expect(SY_ERR_CONFIG, err, SY_ERR_CONFIG, "deadline", "bad deadline names the field");
    err = NULL;
    check(sy_client_new("{\"speed\": 3}", &err) == NULL, "an unknown field is NULL");
    expect(SY_ERR_CONFIG, err, SY_ERR_CONFIG, "speed", "unknown field named");
    err = NULL;
    const char bad_utf8[] = {'{', '"', (char)0xff, '"', '}', 0};
    check(sy_client_new(bad_utf8, &err) == NULL, "invalid UTF-8 is NULL");
    expect(SY_ERR_INVALID, err, SY_ERR_INVALID, "UTF-8", "invalid UTF-8 config");
    check(sy_client_new("{", NULL) == NULL, "no error out-pointer: still NULL, no crash");

    sy_client *client = client_for(argv[1]);

    /* Requests. */
    int rc = sy_request(NULL, "GET", "/", NULL, 0, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID_HANDLE, "NULL", "request on a NULL client");
    rc = sy_request(client, NULL, "/", NULL, 0, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "method is NULL", "NULL method");
    rc = sy_request(client, "GE T", "/", NULL, 0, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "not an HTTP method", "bad method");
    rc = sy_request(client, "GET", NULL, NULL, 0, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "path is NULL", "NULL path");
    rc = sy_request(client, "GET", "/", NULL, 2, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "headers is NULL", "NULL headers with a count");
    sy_header newline[] = {{"x-bad", "a\nb"}};
    rc = sy_request(client, "GET", "/", newline, 1, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "x-bad", "a header value with a newline");
    sy_header null_value[] = {{"x-empty", NULL}};
    rc = sy_request(client, "GET", "/", null_value, 1, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "headers[0].value is NULL", "a NULL header value");
    rc = sy_request(client, "POST", "/", NULL, 0, NULL, 5, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID, "body is NULL", "NULL body with a length");
    rc = sy_request(client, "GET", "/", NULL, 0, NULL, 0, 0, NULL, &err);
    expect(rc, err, SY_ERR_INVALID, "resp is NULL", "no response out-pointer");

    /* A 404 is an answer; a 500 is a failure after the SDK's retries. */
    rc = sy_request(client, "GET", "/api/x?status=404", NULL, 0, NULL, 0, 0, &resp, &err);
    check(rc == SY_OK && err == NULL && sy_response_status(resp) == 404, "a 404 is an answer");
    check(sy_response_header(resp, "X-Backend-Id") != NULL, "headers are read in any case");
    check(sy_response_backend(resp) != NULL &&
              strcmp(sy_response_backend(resp), sy_response_header(resp, "x-backend-id")) == 0,
          "sy_response_backend is the X-Backend-Id");
    check(sy_response_header(resp, "x-missing") == NULL, "a missing header is NULL");
    check(sy_response_header_name(resp, 1000) == NULL, "a header index past the end is NULL");
    sy_response_free(resp);
    resp = NULL;
    rc = sy_request(client, "GET", "/api/x?status=500", NULL, 0, NULL, 0, 0, &resp, &err);
    check(resp == NULL, "no response on a failure");
    expect(rc, err, SY_ERR_STATUS, "500", "a 500 after retries");
    rc = sy_request(client, "GET", "/api/x?delay_ms=2000", NULL, 0, NULL, 0, 200, &resp, &err);
    expect(rc, err, SY_ERR_DEADLINE, NULL, "a deadline of 200 ms");

    sy_client *dead = client_for(argv[2]);
    rc = sy_request(dead, "GET", "/", NULL, 0, NULL, 0, 0, &resp, &err);
    check(rc != SY_OK && err != NULL && sy_error_retryable(err), "a router nobody listens on: retryable");
    sy_error_free(err);
    err = NULL;
    sy_session *none = sy_session_open(dead, "/ws/echo", &err);
    check(none == NULL && err != NULL, "a session through a dead router is NULL with an error");
    sy_error_free(err);
    err = NULL;
    sy_client_free(dead);

    /* Handles: freed, of the wrong type, freed twice. */
    rc = sy_request(dead, "GET", "/", NULL, 0, NULL, 0, 0, &resp, &err);
    expect(rc, err, SY_ERR_INVALID_HANDLE, "not live", "a request on a freed client");
    sy_client_free(dead); /* freed twice: ignored */
    check(sy_response_status((sy_response *)client) == 0, "a client is not a response");
    check(sy_error_kind(NULL) == SY_ERR_INVALID_HANDLE, "sy_error_kind(NULL)");
    check(sy_error_message(NULL) == NULL, "sy_error_message(NULL)");
    size_t len = 42;
    check(sy_response_body(NULL, &len) == NULL && len == 0, "sy_response_body(NULL)");
    sy_response_free(NULL);
    sy_error_free(NULL);
    sy_event_free(NULL);
    sy_client_free(NULL);

    /* Sessions. */
    sy_session *session = sy_session_open(client, NULL, &err);
    check(session == NULL, "NULL path: no session");
    expect(SY_ERR_INVALID, err, SY_ERR_INVALID, "path is NULL", "session on a NULL path");
    err = NULL;
    session = sy_session_open(client, "/ws/echo", &err);
    check(session != NULL && err == NULL, "a session opens");
    rc = sy_session_send(session, 7, (const uint8_t *)"x", 1, &err);
    expect(rc, err, SY_ERR_INVALID, "SY_MESSAGE_TEXT", "an unknown message kind");
    const uint8_t not_utf8[] = {0xc3, 0x28};
    rc = sy_session_send(session, SY_MESSAGE_TEXT, not_utf8, 2, &err);
    expect(rc, err, SY_ERR_INVALID, "UTF-8", "a text message that is not UTF-8");
    rc = sy_session_send(session, SY_MESSAGE_BINARY, NULL, 3, &err);
    expect(rc, err, SY_ERR_INVALID, "data is NULL", "NULL data with a length");
    sy_event *event = NULL;
    rc = sy_session_next_event(session, 10, NULL, &err);
    expect(rc, err, SY_ERR_INVALID, "event is NULL", "no event out-pointer");
    /* The first event is CONNECTED; then nothing comes until something is sent. */
    rc = sy_session_next_event(session, 5000, &event, &err);
    check(rc == SY_OK && event && sy_event_kind(event) == SY_EVENT_CONNECTED, "the first event is CONNECTED");
    check(sy_event_data(event, &len) == NULL && len == 0, "a CONNECTED event has no data");
    sy_event_free(event);
    event = NULL;
    rc = sy_session_next_event(session, 50, &event, &err);
    check(event == NULL, "no event on a timeout");
    expect(rc, err, SY_ERR_TIMEOUT, "no event within 50 ms", "a timeout");
    rc = sy_session_send(session, SY_MESSAGE_BINARY, (const uint8_t *)"\x01\x02", 2, &err);
    check(rc == SY_OK && err == NULL, "a binary message is queued");
    rc = sy_session_next_event(session, 5000, &event, &err);
    check(rc == SY_OK && event && sy_event_kind(event) == SY_EVENT_MESSAGE, "its echo arrives");
    sy_event_free(event);
    sy_event_free(event); /* freed twice: ignored */
    check(sy_event_kind(event) == 0, "a freed event reads as nothing");
    rc = sy_session_close(session, &err);
    check(rc == SY_OK && err == NULL, "the session closes");
    rc = sy_session_send(session, SY_MESSAGE_TEXT, (const uint8_t *)"late", 4, &err);
    expect(rc, err, SY_ERR_INVALID_HANDLE, "not live", "a send on a closed session");
    rc = sy_session_close(session, &err);
    expect(rc, err, SY_ERR_INVALID_HANDLE, "not live", "a session closed twice");

    sy_client_free(client);
    printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
