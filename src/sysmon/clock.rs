//! sysmon's clock: nanoseconds since the first use, from the monotonic
//! clock. Only sysmon and the hook thread read it (never a lock fast path).

use std::sync::LazyLock;
use std::time::Instant;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}
