//! One node's ceiling: how many connections this process can hold, each with its reader
//! thread, from the limits the OS sets (`platform::process_limits`), and `--max-clients`
//! fitted under it.
//!
//! Owns the arithmetic and the one warning line; reads the limits through `platform` and
//! touches nothing else. Past the ceiling a thread's start can fail inside std, where a
//! failure aborts the whole process (a signal stack that cannot be mapped), so the server
//! must stay below it and answer 503 instead.

use log::warn;

use crate::config::Config;
use crate::platform::{self, ProcessLimits};

/// Mappings a reader thread adds: its stack, the stack's guard page, std's signal stack and
/// that stack's guard page.
const MAPS_PER_THREAD: u64 = 4;
/// Threads wschat runs besides the readers (main, listener, broadcaster, and a few spare).
const SPARE_THREADS: u64 = 16;
/// File descriptors the server needs besides one per connection (listener, logs, history).
pub(crate) const SPARE_FDS: u64 = 32;
/// What the readers may use of each shared limit: the rest is headroom for allocator arenas,
/// other threads and processes of the same user, and the whole system's other threads.
const USABLE_PERCENT: u64 = 90;
/// What reader stacks may take of a 32-bit address space: the heap, the libraries and the
/// buffers need the rest.
const STACKS_SHARE_OF_ADDRESS_SPACE_PERCENT: u64 = 50;

/// The limit that sets the ceiling, for the warning line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    MapCount,
    ThreadsMax,
    PidMax,
    UserProcesses,
    OpenFiles,
    AddressSpace,
}

impl Bound {
    /// Why the limit bounds connections, and which setting raises it.
    fn explain(self) -> &'static str {
        match self {
            Bound::MapCount => {
                "vm.max_map_count, and each connection's thread takes 4 memory maps \
                 (raise it: sysctl -w vm.max_map_count=262144)"
            }
            Bound::ThreadsMax => {
                "kernel.threads-max, and each connection has a thread \
                 (raise it: sysctl -w kernel.threads-max=...)"
            }
            Bound::PidMax => {
                "kernel.pid_max, and each connection's thread takes a pid \
                 (raise it: sysctl -w kernel.pid_max=4194304)"
            }
            Bound::UserProcesses => {
                "the user's process limit (RLIMIT_NPROC), and each connection has a thread \
                 (raise it: ulimit -u, or LimitNPROC= in the systemd unit)"
            }
            Bound::OpenFiles => {
                "the open-file limit (RLIMIT_NOFILE), and each connection holds a socket \
                 (raise it: ulimit -n, or LimitNOFILE= in the systemd unit)"
            }
            Bound::AddressSpace => {
                "a 32-bit address space, and each connection's thread reserves its stack \
                 (a 64-bit OS lifts it)"
            }
        }
    }
}

/// Connections this process can hold, and the limit that says so; `None` when no limit is
/// known (an OS without them, or all unlimited).
pub(crate) fn ceiling(limits: &ProcessLimits, stack_bytes: usize) -> Option<(usize, Bound)> {
    let usable = |limit: u64| limit.saturating_mul(USABLE_PERCENT) / 100;
    let threads = |limit: u64| usable(limit).saturating_sub(SPARE_THREADS);
    let maps = limits.map_count.map(|count| {
        usable(count.saturating_sub(limits.maps_in_use.unwrap_or(0))) / MAPS_PER_THREAD
    });
    let stacks = limits.address_space_bytes.map(|bytes| {
        bytes.saturating_mul(STACKS_SHARE_OF_ADDRESS_SPACE_PERCENT)
            / 100
            / (stack_bytes.max(1) as u64)
    });
    [
        (maps, Bound::MapCount),
        (limits.threads_max.map(threads), Bound::ThreadsMax),
        (limits.pid_max.map(threads), Bound::PidMax),
        (limits.user_processes.map(threads), Bound::UserProcesses),
        (
            limits.open_files.map(|n| n.saturating_sub(SPARE_FDS)),
            Bound::OpenFiles,
        ),
        (stacks, Bound::AddressSpace),
    ]
    .into_iter()
    .filter_map(|(clients, bound)| Some((clients?, bound)))
    .min_by_key(|&(clients, _)| clients)
    .map(|(clients, bound)| (usize::try_from(clients).unwrap_or(usize::MAX).max(1), bound))
}

/// `max_clients` fitted under the ceiling, and the warning to log when it was lowered.
pub(crate) fn fit_max_clients(
    max_clients: usize,
    limits: &ProcessLimits,
    stack_bytes: usize,
) -> (usize, Option<String>) {
    match ceiling(limits, stack_bytes) {
        Some((clients, bound)) if clients < max_clients => (
            clients,
            Some(format!(
                "--max-clients {max_clients} lowered to {clients}, what this machine allows \
                 one process with headroom: the limit is {}; connections past it get 503 \
                 (more than one node behind one address is planned)",
                bound.explain()
            )),
        ),
        _ => (max_clients, None),
    }
}

/// Raises the soft open-file limit to the hard one (often 1024 against 1,048,576), then fits
/// `max_clients` under what the OS allows one process, with one warning when it is lowered.
pub(crate) fn fit_to_the_os(mut config: Config, stack_bytes: usize) -> Config {
    platform::raise_open_file_limit();
    let limits = platform::process_limits();
    let (max_clients, warning) = fit_max_clients(config.max_clients, &limits, stack_bytes);
    if let Some(warning) = warning {
        warn!("{warning}");
    }
    config.max_clients = max_clients;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK_BYTES: usize = 128 * 1024;

    /// This machine's figures when a reader thread's start aborted the process at 16,363
    /// connections (issue 15).
    fn the_box_that_aborted() -> ProcessLimits {
        ProcessLimits {
            map_count: Some(65_530),
            maps_in_use: Some(80),
            threads_max: Some(192_724),
            pid_max: Some(32_768),
            user_processes: Some(96_362),
            open_files: Some(1_048_576),
            address_space_bytes: None,
        }
    }

    #[test]
    fn the_map_count_sets_the_ceiling_below_where_the_process_aborted() {
        let (clients, bound) = ceiling(&the_box_that_aborted(), STACK_BYTES).unwrap();
        assert_eq!(bound, Bound::MapCount);
        // (65,530 - 80) maps, 90% of them, 4 per thread.
        assert_eq!(clients, 14_726);
        assert!(clients < 16_363);
    }

    #[test]
    fn each_limit_can_be_the_one_that_binds() {
        let base = the_box_that_aborted();
        let cases = [
            (
                ProcessLimits {
                    threads_max: Some(10_000),
                    ..base
                },
                Bound::ThreadsMax,
                8_984,
            ),
            (
                ProcessLimits {
                    pid_max: Some(4_000),
                    ..base
                },
                Bound::PidMax,
                3_584,
            ),
            (
                ProcessLimits {
                    user_processes: Some(2_000),
                    ..base
                },
                Bound::UserProcesses,
                1_784,
            ),
            (
                ProcessLimits {
                    open_files: Some(1_024),
                    ..base
                },
                Bound::OpenFiles,
                992,
            ),
        ];
        for (limits, bound, clients) in cases {
            assert_eq!(ceiling(&limits, STACK_BYTES), Some((clients, bound)));
        }
    }

    /// A 32-bit Raspberry Pi OS process has about 3 GiB: half of it for 128 KiB stacks.
    #[test]
    fn a_32_bit_address_space_bounds_the_stacks() {
        let limits = ProcessLimits {
            address_space_bytes: Some(3 << 30),
            ..the_box_that_aborted()
        };
        assert_eq!(
            ceiling(&limits, STACK_BYTES),
            Some((12_288, Bound::AddressSpace))
        );
    }

    #[test]
    fn no_known_limit_no_ceiling() {
        assert_eq!(ceiling(&ProcessLimits::default(), STACK_BYTES), None);
        assert_eq!(
            fit_max_clients(40_000, &ProcessLimits::default(), STACK_BYTES),
            (40_000, None)
        );
    }

    #[test]
    fn a_max_clients_over_the_ceiling_is_lowered_with_one_warning_that_says_how_to_raise_it() {
        let (clients, warning) = fit_max_clients(40_000, &the_box_that_aborted(), STACK_BYTES);
        assert_eq!(clients, 14_726);
        let warning = warning.expect("a warning");
        assert!(
            warning.contains("--max-clients 40000 lowered to 14726"),
            "{warning}"
        );
        assert!(warning.contains("sysctl -w vm.max_map_count"), "{warning}");
        assert!(!warning.contains('\n'), "one line");

        let (clients, warning) = fit_max_clients(1_024, &the_box_that_aborted(), STACK_BYTES);
        assert_eq!(
            (clients, warning),
            (1_024, None),
            "under the ceiling: untouched"
        );
    }
}
