//! The queue contract (`queue_support`) run against the in-memory backend; the
//! durable backends run the same functions from their own test files.

mod queue_support;

use edgepipe_core::queue::{MemoryQueue, QueueOptions};
use queue_support::Opened;

fn memory(options: QueueOptions) -> Opened {
    Opened {
        queue: Box::new(MemoryQueue::new(options)),
        // Nothing survives a restart: the durable contract does not apply.
        reopen: None,
    }
}

queue_contract_tests!(memory);
