/* The delivery worker's calls (feature `delivery`): every pointer argument NULL,
 * refused endpoints and MQTT settings, a worker started against an endpoint where
 * nothing listens (the batch is retried and stays queued, never lost), stop twice,
 * metrics as a struct and as JSON, a use after free. Without the feature the
 * header declares none of it, which this program shows too. */
#include <inttypes.h>

#include "support.h"

#if defined(EDGEPIPE_DELIVERY)
static int checks = 0;

#define IS(expected, call)                \
    do {                                  \
        CHECK_STATUS((expected), (call)); \
        checks++;                         \
    } while (0)

int main(void) {
    edgepipe_queue *queue = NULL;
    CHECK(edgepipe_queue_new_memory(NULL, &queue));
    edgepipe_batch *batch = NULL;
    static const char line[] = "{\"record_id\":\"r1\",\"device_id\":\"d\",\"timestamp\":"
                               "\"2026-01-01T00:00:00Z\",\"data_type\":\"t\",\"payload\":{\"v\":1}}\n";
    CHECK(edgepipe_batch_new_from_jsonl(STR("gw-d"), NULL, (const uint8_t *)line, sizeof line - 1,
                                        0, &batch));
    uint64_t id = 0;
    CHECK(edgepipe_queue_enqueue_batch(queue, batch, &id));
    edgepipe_batch_free(batch);

    edgepipe_delivery_options options;
    CHECK(edgepipe_delivery_options_default(&options));
    options.retry_base_millis = 10;
    options.retry_max_millis = 20;
    options.idle_wait_millis = 10;
    options.request_timeout_millis = 2000;
    edgepipe_delivery *delivery = NULL;
    edgepipe_delivery_counters counters;
    edgepipe_buffer *json = NULL;

    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_options_default(NULL));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_http(NULL, STR("http://127.0.0.1:1"), STR("k"), &options, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_http(queue, NULL, 5, STR("k"), &options, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_http(queue, STR("http://127.0.0.1:1"), NULL, 1, &options, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_http(queue, STR("http://127.0.0.1:1"), STR("k"), &options, NULL));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_mqtt(NULL, STR("127.0.0.1"), 1, STR("c"), NULL, 0, NULL, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_mqtt(queue, NULL, 9, 1, STR("c"), NULL, 0, NULL, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_mqtt(queue, STR("127.0.0.1"), 1, NULL, 1, NULL, 0, NULL, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_mqtt(queue, STR("127.0.0.1"), 1, STR("c"), NULL, 3, NULL, &delivery));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT,
       edgepipe_delivery_start_mqtt(queue, STR("127.0.0.1"), 1, STR("c"), NULL, 0, NULL, NULL));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_notify(NULL));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_metrics(NULL, &counters));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_metrics_json(NULL, &json));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_stop(NULL));
    EXPECT(delivery == NULL && json == NULL);
    printf("NULL arguments: NULL_ARGUMENT (%d calls)\n", checks);

    checks = 0;
    IS(EDGEPIPE_STATUS_CONFIG,
       edgepipe_delivery_start_http(queue, STR("ftp://127.0.0.1"), STR("k"), NULL, &delivery));
    IS(EDGEPIPE_STATUS_CONFIG,
       edgepipe_delivery_start_mqtt(queue, STR(""), 1883, STR("c"), NULL, 0, NULL, &delivery));
    IS(EDGEPIPE_STATUS_CONFIG,
       edgepipe_delivery_start_mqtt(queue, STR("127.0.0.1"), 1883, STR(""), NULL, 0, NULL, &delivery));
    IS(EDGEPIPE_STATUS_INVALID_UTF8,
       edgepipe_delivery_start_http(queue, STR("http://\xff"), STR("k"), NULL, &delivery));
    EXPECT(delivery == NULL);
    printf("refused endpoint and MQTT settings: CONFIG, INVALID_UTF8 (%d calls)\n", checks);

    /* An MQTT worker starts without connecting (it connects on its first send). */
    CHECK(edgepipe_delivery_start_mqtt(queue, STR("127.0.0.1"), 1, STR("edge-c"),
                                       STR("edgepipe/{source}"), &options, &delivery));
    CHECK(edgepipe_delivery_stop(delivery));
    edgepipe_delivery_free(delivery);
    delivery = NULL;

    /* Nothing listens on port 1: sends fail, the batch is nacked and stays queued. */
    CHECK(edgepipe_delivery_start_http(queue, STR("http://127.0.0.1:1"), STR("k"), &options,
                                       &delivery));
    CHECK(edgepipe_delivery_notify(delivery));
    edgepipe_delivery_counters one_retry = {.retries = 1};
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_wait(NULL, &one_retry, 1, &counters));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_wait(delivery, NULL, 1, &counters));
    IS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_delivery_wait(delivery, &one_retry, 1, NULL));
    CHECK(edgepipe_delivery_wait(delivery, &one_retry, 60 * 1000, &counters));
    EXPECT(counters.running && counters.batches_sent == 0 && counters.retries >= 1);
    edgepipe_delivery_counters one_sent = {.batches_sent = 1};
    IS(EDGEPIPE_STATUS_TIMED_OUT, edgepipe_delivery_wait(delivery, &one_sent, 1, &counters));
    printf("wait: for a retry OK, for a send TIMED_OUT\n");
    CHECK(edgepipe_delivery_stop(delivery));
    CHECK(edgepipe_delivery_stop(delivery));
    IS(EDGEPIPE_STATUS_TIMED_OUT, edgepipe_delivery_wait(delivery, &one_sent, 1, &counters));
    CHECK(edgepipe_delivery_metrics(delivery, &counters));
    EXPECT(!counters.running);
    CHECK(edgepipe_delivery_metrics_json(delivery, &json));
    EXPECT(bytes_contain(edgepipe_buffer_data(json), edgepipe_buffer_len(json), "\"last_failure\":\""));
    EXPECT(bytes_contain(edgepipe_buffer_data(json), edgepipe_buffer_len(json), "\"running\":false"));
    edgepipe_buffer_free(json);
    edgepipe_queue_counters stats;
    CHECK(edgepipe_queue_stats(queue, &stats));
    printf("unreachable endpoint: retried, stopped, batch still queued (%" PRIu64 " pending, %" PRIu64
           " in flight)\n",
           stats.pending, stats.in_flight);
    edgepipe_delivery_free(delivery);
    CHECK_STATUS(EDGEPIPE_STATUS_INVALID_HANDLE, edgepipe_delivery_notify(delivery));
    edgepipe_delivery_free(delivery);
    edgepipe_delivery_free(NULL);
    printf("after free: INVALID_HANDLE\n");
    edgepipe_queue_free(queue);
    return 0;
}
#else
int main(void) {
    printf("built without the delivery feature: edgepipe_delivery_* is not declared\n");
    return 0;
}
#endif
