/* A queue written in C behind edgepipe_queue: batches enqueued through
 * edgepipe (the batch -> queue path), taken, acked, nacked and released through
 * it; a refusal passed on as QUEUE_FULL; required callbacks checked; the context
 * freed once. Every buffer the C queue keeps is its own copy (valgrind checks). */
#include <inttypes.h>

#include "support.h"

#define NOW INT64_C(1767225600000000000)
#define SECOND INT64_C(1000000000)
#define SLOTS 8

enum { READY, IN_FLIGHT, DEAD, GONE };

typedef struct {
    uint64_t id;
    uint32_t attempts;
    int state;
    int64_t created_at, retry_at;
    char *source_id, *batch_id;
    size_t source_id_len, batch_id_len;
    uint8_t *payload;
    size_t payload_len;
} slot;

typedef struct {
    slot slots[SLOTS];
    size_t count;
    int refuse;
    uint32_t max_attempts;
} c_queue;

static int contexts_freed = 0;

static void *copy(const void *data, size_t len) {
    void *out = malloc(len > 0 ? len : 1);
    EXPECT(out != NULL);
    if (len > 0) {
        memcpy(out, data, len);
    }
    return out;
}

static void forget(slot *entry) {
    free(entry->source_id);
    free(entry->batch_id);
    free(entry->payload);
    entry->source_id = entry->batch_id = NULL;
    entry->payload = NULL;
    entry->state = GONE;
}

static slot *find(c_queue *queue, uint64_t id, int state) {
    for (size_t index = 0; index < queue->count; index++) {
        if (queue->slots[index].id == id && queue->slots[index].state == state) {
            return &queue->slots[index];
        }
    }
    return NULL;
}

/* The entry's buffers are edgepipe's, valid during this call only: copy them. */
static int32_t q_enqueue(void *ctx, const edgepipe_queue_entry_view *entry, uint64_t *out_id) {
    c_queue *queue = ctx;
    if (queue->refuse || queue->count == SLOTS) {
        return EDGEPIPE_STATUS_QUEUE_FULL;
    }
    slot *new_slot = &queue->slots[queue->count];
    new_slot->id = queue->count + 1;
    new_slot->attempts = 0;
    new_slot->state = READY;
    new_slot->created_at = entry->created_at_unix_nanos;
    new_slot->retry_at = 0;
    new_slot->source_id = copy(entry->source_id, entry->source_id_len);
    new_slot->source_id_len = entry->source_id_len;
    new_slot->batch_id = copy(entry->batch_id, entry->batch_id_len);
    new_slot->batch_id_len = entry->batch_id_len;
    new_slot->payload = copy(entry->payload, entry->payload_len);
    new_slot->payload_len = entry->payload_len;
    queue->count++;
    *out_id = new_slot->id;
    return EDGEPIPE_STATUS_OK;
}

/* The view points into this queue's memory, which stays put until the next call. */
static int32_t q_take(void *ctx, int64_t now, edgepipe_queue_entry_view *out, bool *found) {
    c_queue *queue = ctx;
    *found = false;
    for (size_t index = 0; index < queue->count; index++) {
        slot *entry = &queue->slots[index];
        if (entry->state == IN_FLIGHT || (entry->state == READY && entry->retry_at > now)) {
            return EDGEPIPE_STATUS_OK; /* one source here: keep its order */
        }
        if (entry->state == READY) {
            entry->state = IN_FLIGHT;
            out->id = entry->id;
            out->attempts = entry->attempts;
            out->source_id = entry->source_id;
            out->source_id_len = entry->source_id_len;
            out->batch_id = entry->batch_id;
            out->batch_id_len = entry->batch_id_len;
            out->created_at_unix_nanos = entry->created_at;
            out->payload = entry->payload;
            out->payload_len = entry->payload_len;
            *found = true;
            return EDGEPIPE_STATUS_OK;
        }
    }
    return EDGEPIPE_STATUS_OK;
}

static int32_t q_ack(void *ctx, uint64_t id) {
    slot *entry = find(ctx, id, IN_FLIGHT);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    forget(entry);
    return EDGEPIPE_STATUS_OK;
}

static int32_t q_nack(void *ctx, uint64_t id, int64_t retry_at, uint32_t *attempts, bool *dead) {
    c_queue *queue = ctx;
    slot *entry = find(queue, id, IN_FLIGHT);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    entry->attempts++;
    *attempts = entry->attempts;
    *dead = entry->attempts >= queue->max_attempts;
    entry->state = *dead ? DEAD : READY;
    entry->retry_at = retry_at;
    return EDGEPIPE_STATUS_OK;
}

static int32_t q_release(void *ctx, uint64_t id) {
    slot *entry = find(ctx, id, IN_FLIGHT);
    if (entry == NULL) {
        return EDGEPIPE_STATUS_UNKNOWN_ENTRY;
    }
    entry->state = READY;
    return EDGEPIPE_STATUS_OK;
}

static int32_t q_len(void *ctx, uint64_t *entries, uint64_t *bytes) {
    c_queue *queue = ctx;
    *entries = 0;
    *bytes = 0;
    for (size_t index = 0; index < queue->count; index++) {
        if (queue->slots[index].state == READY || queue->slots[index].state == IN_FLIGHT) {
            *entries += 1;
            *bytes += queue->slots[index].payload_len;
        }
    }
    return EDGEPIPE_STATUS_OK;
}

static void q_free(void *ctx) {
    c_queue *queue = ctx;
    for (size_t index = 0; index < queue->count; index++) {
        if (queue->slots[index].state != GONE) {
            forget(&queue->slots[index]);
        }
    }
    free(queue);
    contexts_freed++;
}

static edgepipe_queue_entry_fields take(const edgepipe_queue *queue, int64_t now,
                                        edgepipe_queue_entry **entry) {
    edgepipe_queue_entry_fields fields;
    memset(&fields, 0, sizeof fields);
    CHECK(edgepipe_queue_take(queue, now, entry));
    if (*entry != NULL) {
        CHECK(edgepipe_queue_entry_info(*entry, &fields));
    }
    return fields;
}

int main(void) {
    c_queue *state = calloc(1, sizeof *state);
    EXPECT(state != NULL);
    state->max_attempts = 3;
    edgepipe_queue_callbacks callbacks = {
        .ctx = state,
        .enqueue = q_enqueue,
        .take = q_take,
        .ack = q_ack,
        .nack = q_nack,
        .len = q_len,
        .release = q_release,
        .dead_letter = NULL, /* edgepipe parks such entries with a nack instead */
        .free_ctx = q_free,
    };

    edgepipe_queue *queue = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_NULL_ARGUMENT, edgepipe_queue_new_from_callbacks(NULL, &queue));
    edgepipe_queue_callbacks incomplete = callbacks;
    incomplete.take = NULL;
    CHECK_STATUS(EDGEPIPE_STATUS_NULL_ARGUMENT,
                 edgepipe_queue_new_from_callbacks(&incomplete, &queue));
    EXPECT(queue == NULL && contexts_freed == 0);
    char message[512];
    printf("no take callback: NULL_ARGUMENT (%s)\n", last_error(message));
    CHECK(edgepipe_queue_new_from_callbacks(&callbacks, &queue));

    edgepipe_batch_options options;
    CHECK(edgepipe_batch_options_default(&options));
    options.max_records = 2;
    options.codec = EDGEPIPE_CODEC_COLUMNAR;
    edgepipe_batcher *batcher = NULL;
    CHECK(edgepipe_batcher_new(STR("gw-c"), &options, &batcher));
    static const char lines[] =
        "{\"record_id\":\"gw-c:0:0\",\"device_id\":\"d\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data_type\":\"t\",\"payload\":{\"v\":1}}\n"
        "{\"record_id\":\"gw-c:0:1\",\"device_id\":\"d\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"data_type\":\"t\",\"payload\":{\"v\":2}}\n"
        "{\"record_id\":\"gw-c:0:2\",\"device_id\":\"d\",\"timestamp\":\"2026-01-01T00:00:02Z\",\"data_type\":\"t\",\"payload\":{\"v\":3}}\n"
        "{\"record_id\":\"gw-c:0:3\",\"device_id\":\"d\",\"timestamp\":\"2026-01-01T00:00:03Z\",\"data_type\":\"t\",\"payload\":{\"v\":4}}\n";
    edgepipe_buffer *errors = NULL;
    CHECK(edgepipe_batcher_push_jsonl(batcher, (const uint8_t *)lines, sizeof lines - 1, NOW, &errors));
    EXPECT(edgepipe_buffer_len(errors) == 0);
    edgepipe_buffer_free(errors);
    for (;;) {
        edgepipe_batch *batch = NULL;
        CHECK(edgepipe_batcher_next_batch(batcher, &batch));
        if (batch == NULL) {
            break;
        }
        uint64_t id = 0;
        CHECK(edgepipe_queue_enqueue_batch(queue, batch, &id));
        printf("enqueued entry %" PRIu64 "\n", id);
        edgepipe_batch_free(batch);
    }
    edgepipe_batcher_free(batcher);

    state->refuse = 1;
    uint64_t refused_id = 0;
    CHECK_STATUS(EDGEPIPE_STATUS_QUEUE_FULL,
                 edgepipe_queue_enqueue(queue, STR("gw-c"), STR("x"), NOW, NULL, 0, &refused_id));
    state->refuse = 0;
    printf("the C queue refuses: QUEUE_FULL\n");

    edgepipe_queue_counters stats;
    CHECK(edgepipe_queue_stats(queue, &stats));
    printf("depth %" PRIu64 ", bytes>0 %d\n", stats.pending, stats.bytes > 0);

    edgepipe_queue_entry *entry = NULL;
    edgepipe_queue_entry_fields fields = take(queue, NOW, &entry);
    edgepipe_batch *batch = NULL;
    CHECK(edgepipe_queue_entry_batch(entry, NULL, &batch));
    edgepipe_buffer *records = NULL;
    CHECK(edgepipe_batch_decode(batch, NULL, &records));
    printf("entry %" PRIu64 " holds %zu records\n", fields.id,
           count_lines(edgepipe_buffer_data(records), edgepipe_buffer_len(records)));
    edgepipe_buffer_free(records);
    edgepipe_batch_free(batch);
    CHECK(edgepipe_queue_ack(queue, fields.id));
    CHECK_STATUS(EDGEPIPE_STATUS_UNKNOWN_ENTRY, edgepipe_queue_ack(queue, fields.id));
    edgepipe_queue_entry_free(entry);

    fields = take(queue, NOW, &entry);
    edgepipe_nack_result nacked;
    CHECK(edgepipe_queue_nack(queue, fields.id, NOW + 10 * SECOND, &nacked));
    printf("entry %" PRIu64 " nacked: attempts %" PRIu32 "\n", fields.id, nacked.attempts);
    edgepipe_queue_entry_free(entry);
    take(queue, NOW + SECOND, &entry);
    EXPECT(entry == NULL);
    printf("not ready before its retry time\n");
    fields = take(queue, NOW + 10 * SECOND, &entry);
    EXPECT(entry != NULL && fields.attempts == 1);
    CHECK(edgepipe_queue_release(queue, fields.id));
    edgepipe_queue_entry_free(entry);
    fields = take(queue, NOW + 10 * SECOND, &entry);
    printf("released and taken again: entry %" PRIu64 ", attempts %" PRIu32 "\n", fields.id,
           fields.attempts);
    CHECK(edgepipe_queue_ack(queue, fields.id));
    edgepipe_queue_entry_free(entry);

    CHECK(edgepipe_queue_stats(queue, &stats));
    printf("depth %" PRIu64 "\n", stats.pending);
    edgepipe_queue_free(queue);
    printf("context freed %d time(s)\n", contexts_freed);
    return contexts_freed == 1 ? 0 : 1;
}
