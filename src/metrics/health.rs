//! Health: whether the broadcaster is alive, for `GET /healthz`.
//!
//! Owns the rule, on values read from the heartbeat (`Shared::health`): a broadcaster that
//! waits for an event is healthy however long it waits; one whose round has run for
//! `stuck_round_after` is stuck. Pure logic: no clock, no socket.

use std::time::Duration;

/// What the heartbeat says the broadcaster is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for an event.
    Idle,
    /// In a round that started this long ago.
    InRound { for_ms: u64 },
    /// Finished: the server is stopping.
    Stopped,
}

/// The answer `/healthz` gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Health {
    /// 200 or 503.
    pub status: u16,
    /// One line for the body: "ok" or why not.
    pub reason: String,
}

impl Health {
    #[cfg(test)]
    pub(crate) fn is_ok(&self) -> bool {
        self.status == 200
    }
}

pub(crate) fn judge(state: State, stuck_after: Duration) -> Health {
    let limit_ms = stuck_after.as_millis() as u64;
    match state {
        State::Idle => ok("ok: the broadcaster is waiting for events".into()),
        State::InRound { for_ms } if for_ms < limit_ms => ok(format!(
            "ok: the broadcaster is in a round ({for_ms} ms so far)"
        )),
        State::InRound { for_ms } => unavailable(format!(
            "the broadcaster is stuck: its round has run for {:.1} s (limit {:.1} s)",
            for_ms as f64 / 1000.0,
            stuck_after.as_secs_f64()
        )),
        State::Stopped => unavailable("the server is shutting down".into()),
    }
}

fn ok(reason: String) -> Health {
    Health {
        status: 200,
        reason,
    }
}

fn unavailable(reason: String) -> Health {
    Health {
        status: 503,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    #[test]
    fn idle_is_healthy_however_long() {
        assert_eq!(judge(State::Idle, LIMIT).status, 200);
    }

    #[test]
    fn a_round_is_stuck_from_the_limit_on() {
        assert_eq!(judge(State::InRound { for_ms: 4_999 }, LIMIT).status, 200);
        let stuck = judge(State::InRound { for_ms: 5_000 }, LIMIT);
        assert_eq!(stuck.status, 503);
        assert!(stuck.reason.contains("stuck") && stuck.reason.contains("5.0 s"));
    }

    #[test]
    fn stopped_is_unavailable() {
        assert_eq!(judge(State::Stopped, LIMIT).status, 503);
    }
}
