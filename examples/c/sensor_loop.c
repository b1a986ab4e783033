/* A sensor loop on edgepipe's C ABI: readings built field by field, run through a
 * pipeline, batched, queued durably and (in a library built with the `delivery`
 * feature) delivered by the background worker to an ingest server.
 *
 *   sensor_loop QUEUE_DIR [ENDPOINT API_KEY] [--c-queue]
 *
 * QUEUE_DIR holds the durable queue. With ENDPOINT (e.g. http://127.0.0.1:8080)
 * and API_KEY the worker delivers to `ENDPOINT/api/ingest`, or with
 * mqtt://HOST:PORT (API_KEY unused) publishes to that MQTT broker, and the program
 * waits until every record is confirmed. --c-queue uses a queue written in C (below)
 * instead of the durable one. Built and run by edgepipe-ffi/tests/sensor_loop.rs. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgepipe.h"

#define DEVICES 2
#define READINGS 25
#define SECOND INT64_C(1000000000)
#define START INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */

/* Stops the program with the failed call, its status and edgepipe's message. */
static void check(edgepipe_status status, const char *call) {
    if (status == EDGEPIPE_STATUS_OK) {
        return;
    }
    char message[512];
    size_t written = 0;
    edgepipe_error_message(message, sizeof message, &written);
    fprintf(stderr, "%s: status %d: %s\n", call, (int)status, message);
    exit(1);
}
#define CHECK(call) check((call), #call)

/* --- a queue written in C ----------------------------------------------------
 * The smallest store that keeps edgepipe_queue_callbacks' contract: entries in
 * order, one in flight at a time, retried at their time. A firmware would keep
 * them in flash; here they live in memory. */
#define SLOTS 64

typedef struct {
    uint64_t id;
    uint32_t attempts;
    bool in_flight, done;
    int64_t created_at, retry_at;
    char source_id[64], batch_id[64];
    size_t source_id_len, batch_id_len;
    uint8_t *payload; /* our own copy: edgepipe's buffer is only lent to enqueue */
    size_t payload_len;
} slot;

typedef struct {
    slot slots[SLOTS];
    size_t count;
} c_queue;

static slot *find_in_flight(c_queue *queue, uint64_t id) {
    for (size_t index = 0; index < queue->count; index++) {
        if (queue->slots[index].id == id && queue->slots[index].in_flight) {
            return &queue->slots[index];
        }
    }
    return NULL;
}

static int32_t c_enqueue(void *ctx, const edgepipe_queue_entry_view *entry, uint64_t *out_id) {
    c_queue *queue = ctx;
    if (queue->count == SLOTS || entry->source_id_len > 64 || entry->batch_id_len > 64) {
        return EDGEPIPE_STATUS_QUEUE_FULL;
    }
    slot *new_slot = &queue->slots[queue->count];
    memset(new_slot, 0, sizeof *new_slot);
    new_slot->payload = malloc(entry->payload_len);
    if (new_slot->payload == NULL) {
        return EDGEPIPE_STATUS_QUEUE_FULL;
    }
    memcpy(new_slot->payload, entry->payload, entry->payload_len);
    new_slot->payload_len = entry->payload_len;
    memcpy(new_slot->source_id, entry->source_id, entry->source_id_len);
    new_slot->source_id_len = entry->source_id_len;
    memcpy(new_slot->batch_id, entry->batch_id, entry->batch_id_len);
    new_slot->batch_id_len = entry->batch_id_len;
    new_slot->created_at = entry->created_at_unix_nanos;
    new_slot->id = ++queue->count;
    *out_id = new_slot->id;
    return EDGEPIPE_STATUS_OK;
}

/* Lends edgepipe pointers into the slot; they stay valid until the next callback. */
static int32_t c_take(void *ctx, int64_t now, edgepipe_queue_entry_view *out, bool *found) {
    c_queue *queue = ctx;
    *found = false;
    for (size_t index = 0; index < queue->count; index++) {
        slot *entry = &queue->slots[index];
        if (entry->done) {
            continue;
        }
        if (entry->in_flight || entry->retry_at > now) {
            return EDGEPIPE_STATUS_OK; /* keep the source's order */
        }
        entry->in_flight = true;
        *out = (edgepipe_queue_entry_view){
            .id = entry->id,
            .attempts = entry->attempts,
            .source_id = entry->source_id,
            .source_id_len = entry->source_id_len,
            .batch_id = entry->batch_id,
            .batch_id_len = entry->batch_id_len,
            .created_at_unix_nanos = entry->created_at,
            .payload = entry->payload,
            .payload_len = entry->payload_len,
        };
        *found = true;
        return EDGEPIPE_STATUS_OK;
    }
    return EDGEPIPE_STATUS_OK;
}

static int32_t c_ack(void *ctx, uint64_t id) {
    slot *entry = find_in_flight(ctx, id);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    entry->in_flight = false;
    entry->done = true;
    free(entry->payload);
    entry->payload = NULL;
    return EDGEPIPE_STATUS_OK;
}

static int32_t c_nack(void *ctx, uint64_t id, int64_t retry_at, uint32_t *attempts, bool *dead) {
    slot *entry = find_in_flight(ctx, id);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    entry->in_flight = false;
    entry->retry_at = retry_at;
    *attempts = ++entry->attempts;
    *dead = false; /* this queue never gives up */
    return EDGEPIPE_STATUS_OK;
}

static int32_t c_release(void *ctx, uint64_t id) {
    slot *entry = find_in_flight(ctx, id);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    entry->in_flight = false;
    return EDGEPIPE_STATUS_OK;
}

static int32_t c_len(void *ctx, uint64_t *entries, uint64_t *bytes) {
    c_queue *queue = ctx;
    *entries = 0;
    *bytes = 0;
    for (size_t index = 0; index < queue->count; index++) {
        if (!queue->slots[index].done) {
            *entries += 1;
            *bytes += queue->slots[index].payload_len;
        }
    }
    return EDGEPIPE_STATUS_OK;
}

static void c_free(void *ctx) {
    c_queue *queue = ctx;
    for (size_t index = 0; index < queue->count; index++) {
        free(queue->slots[index].payload);
    }
    free(queue);
}

static edgepipe_queue *new_c_queue(void) {
    c_queue *state = calloc(1, sizeof *state);
    if (state == NULL) {
        exit(1);
    }
    edgepipe_queue_callbacks callbacks = {
        .ctx = state,
        .enqueue = c_enqueue,
        .take = c_take,
        .ack = c_ack,
        .nack = c_nack,
        .len = c_len,
        .release = c_release,
        .dead_letter = NULL,
        .free_ctx = c_free,
    };
    edgepipe_queue *queue = NULL;
    CHECK(edgepipe_queue_new_from_callbacks(&callbacks, &queue));
    return queue;
}

/* --- the loop --------------------------------------------------------------- */

/* Moves every closed batch from the batcher into the queue. */
static size_t enqueue_ready(edgepipe_batcher *batcher, const edgepipe_queue *queue) {
    size_t batches = 0;
    for (;;) {
        edgepipe_batch *batch = NULL;
        CHECK(edgepipe_batcher_next_batch(batcher, &batch));
        if (batch == NULL) {
            return batches;
        }
        uint64_t id = 0;
        CHECK(edgepipe_queue_enqueue_batch(queue, batch, &id));
        edgepipe_batch_free(batch);
        batches++;
    }
}

int main(int argc, char **argv) {
    bool c_queue_wanted = argc > 1 && strcmp(argv[argc - 1], "--c-queue") == 0;
    int args = c_queue_wanted ? argc - 1 : argc;
    if (args != 2 && args != 4) {
        fprintf(stderr, "usage: %s QUEUE_DIR [ENDPOINT API_KEY] [--c-queue]\n", argv[0]);
        return 2;
    }
    const char *queue_dir = argv[1];

    static const char config[] =
        "{\"transforms\": ["
        "{\"type\": \"add_metadata\", \"metadata\": {\"site\": \"plant-7\"}},"
        "{\"type\": \"validate_schema\", \"fields\": {\"temperature\": \"number\"}}"
        "]}";
    edgepipe_pipeline *pipeline = NULL;
    CHECK(edgepipe_pipeline_new_from_json(config, sizeof config - 1, &pipeline));

    edgepipe_batch_options batch_options;
    CHECK(edgepipe_batch_options_default(&batch_options));
    batch_options.max_records = 10;
    edgepipe_batcher *batcher = NULL;
    CHECK(edgepipe_batcher_new("gw-c", 4, &batch_options, &batcher));

    edgepipe_queue *queue = NULL;
    if (c_queue_wanted) {
        queue = new_c_queue();
    } else {
        CHECK(edgepipe_queue_open(queue_dir, strlen(queue_dir), NULL, &queue));
    }

    /* One record, reused: ids, time and fields are overwritten per reading. */
    edgepipe_record *record = NULL;
    CHECK(edgepipe_record_new("dev-0", 5, "sensors", 7, &record));
    size_t kept = 0, batches = 0;
    uint64_t sequence = 0;
    for (int step = 0; step < READINGS; step++) {
        for (int device = 0; device < DEVICES; device++) {
            char id[48];
            int id_len = snprintf(id, sizeof id, "gw-c:0:%" PRIu64, sequence++);
            int64_t now = START + step * SECOND;
            CHECK(edgepipe_record_clear_fields(record));
            CHECK(edgepipe_record_set_id(record, id, (size_t)id_len));
            CHECK(edgepipe_record_set_timestamp(record, now));
            CHECK(edgepipe_record_set_metadata(record, "device", 6, device == 0 ? "dev-0" : "dev-1", 5));
            CHECK(edgepipe_record_set_f64(record, "temperature", 11, 20.0 + step * 0.5 + device));
            CHECK(edgepipe_record_set_i64(record, "step", 4, step));
            CHECK(edgepipe_record_set_bool(record, "door_open", 9, step % 5 == 0));

            edgepipe_outcome outcome;
            CHECK(edgepipe_pipeline_process_record(pipeline, record, &outcome));
            if (outcome != EDGEPIPE_OUTCOME_KEEP) {
                continue;
            }
            kept++;
            CHECK(edgepipe_batcher_push(batcher, record, now));
            batches += enqueue_ready(batcher, queue);
        }
    }
    CHECK(edgepipe_batcher_flush(batcher, START + READINGS * SECOND));
    batches += enqueue_ready(batcher, queue);
    edgepipe_record_free(record);
    edgepipe_batcher_free(batcher);
    edgepipe_pipeline_free(pipeline);

    edgepipe_queue_counters stats;
    CHECK(edgepipe_queue_stats(queue, &stats));
    printf("readings: %zu kept, %zu batches queued (depth %" PRIu64 ")\n", kept, batches,
           stats.pending);

    if (args == 4) {
#if defined(EDGEPIPE_DELIVERY)
        edgepipe_delivery_options options;
        CHECK(edgepipe_delivery_options_default(&options));
        options.idle_wait_millis = 50;
        options.retry_base_millis = 50;
        edgepipe_delivery *delivery = NULL;
        const char *endpoint = argv[2];
        if (strncmp(endpoint, "mqtt://", 7) == 0) {
            /* mqtt://HOST:PORT: QoS 1 publishes on edgepipe/{source}/batches. */
            const char *host = endpoint + 7;
            const char *colon = strrchr(host, ':');
            if (colon == NULL) {
                fprintf(stderr, "mqtt:// needs HOST:PORT\n");
                return 2;
            }
            uint16_t port = (uint16_t)strtoul(colon + 1, NULL, 10);
            CHECK(edgepipe_delivery_start_mqtt(queue, host, (size_t)(colon - host), port, "sensor-loop",
                                               11, NULL, 0, &options, &delivery));
        } else {
            CHECK(edgepipe_delivery_start_http(queue, argv[2], strlen(argv[2]), argv[3],
                                               strlen(argv[3]), &options, &delivery));
        }
        CHECK(edgepipe_delivery_notify(delivery));
        /* The worker runs on its own thread: wait until it has confirmed every
         * record (woken as its counters move), for at most a minute. */
        edgepipe_delivery_counters all = {.records_sent = kept};
        edgepipe_delivery_counters sent;
        CHECK(edgepipe_delivery_wait(delivery, &all, 60 * 1000, &sent));
        CHECK(edgepipe_delivery_stop(delivery));
        CHECK(edgepipe_delivery_metrics(delivery, &sent));
        edgepipe_delivery_free(delivery);
        CHECK(edgepipe_queue_stats(queue, &stats));
        printf("delivered: %" PRIu64 " batches, %" PRIu64 " records (depth %" PRIu64 ")\n",
               sent.batches_sent, sent.records_sent, stats.pending);
        if (sent.records_sent != kept) {
            edgepipe_queue_free(queue);
            return 1;
        }
#else
        fprintf(stderr, "this library was built without the delivery feature\n");
        edgepipe_queue_free(queue);
        return 2;
#endif
    }
    edgepipe_queue_free(queue);
    return 0;
}
