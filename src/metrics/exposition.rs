//! The Prometheus text exposition format (version 0.0.4) of a [`Snapshot`].
//!
//! Hand-written: a dozen families of integers need no crate, and the writer stays a plain
//! function of the snapshot. `promtool check metrics` (tests/operations.rs) is its judge.
//! Touches nothing but the string it writes.

use std::fmt::Write;

use super::{ClusterFigures, DropReason, Kind, Snapshot, ROUND_BUCKETS_US};

/// The `Content-Type` of the text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition of `s`.
pub(crate) fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let o = &s.outbox;
    family(
        &mut out,
        "connections",
        "gauge",
        "Open connections (WebSocket) and long-polling sessions, by kind.",
    );
    let conn = |kind: Kind| o.connections[kind as usize];
    for (kind, n) in [
        ("chat", conn(Kind::Chat)),
        ("socketio_websocket", conn(Kind::SocketIoWebSocket)),
        ("socketio_polling", conn(Kind::SocketIoPolling)),
        ("echo", conn(Kind::Echo)),
    ] {
        let _ = writeln!(out, "wschat_connections{{kind=\"{kind}\"}} {n}");
    }
    simple(
        &mut out,
        "rooms",
        "gauge",
        "Rooms that exist (with members or remembered lines).",
        s.rooms,
    );
    simple(
        &mut out,
        "messages_total",
        "counter",
        "Chat lines received.",
        s.messages,
    );
    simple(
        &mut out,
        "deliveries_total",
        "counter",
        "Chat events queued for a client (a broadcast to N counts N).",
        o.deliveries,
    );
    simple(
        &mut out,
        "sent_bytes_total",
        "counter",
        "Bytes written to client sockets.",
        o.sent_bytes,
    );
    family(
        &mut out,
        "dropped_clients_total",
        "counter",
        "Clients the server dropped, by reason.",
    );
    for reason in DropReason::ALL {
        let n = match reason {
            DropReason::Backlog => o.backlog_drops,
            other => s.drops[other as usize],
        };
        let _ = writeln!(
            out,
            "wschat_dropped_clients_total{{reason=\"{}\"}} {n}",
            reason.label()
        );
    }
    simple(
        &mut out,
        "backlog_bytes",
        "gauge",
        "Unsent bytes waiting for clients whose sockets are full.",
        o.backlog_bytes,
    );
    rounds(&mut out, s);
    if let Some(c) = &s.cluster {
        cluster(&mut out, c);
    }
    if let Some(h) = &s.history {
        simple(
            &mut out,
            "history_waiting_lines",
            "gauge",
            "Remembered lines queued for the history file's writer, not yet taken (its lag, in lines).",
            h.waiting_lines,
        );
        simple(
            &mut out,
            "history_left_out_lines_total",
            "counter",
            "Lines left out of the history file because its writer was behind (rooms still remember them).",
            h.left_out_lines,
        );
    }
    out
}

/// The cluster bridge's figures (`--redis` only).
fn cluster(out: &mut String, c: &ClusterFigures) {
    let families = [
        (
            "cluster_link_up",
            "gauge",
            "1 while both connections to Redis work (lines go to and come from the other nodes), else 0.",
            u64::from(c.link_up),
        ),
        (
            "cluster_published_lines_total",
            "counter",
            "Room lines Redis took for the other nodes.",
            c.published,
        ),
        (
            "cluster_received_lines_total",
            "counter",
            "Other nodes' room lines received through Redis.",
            c.received,
        ),
        (
            "cluster_dropped_lines_total",
            "counter",
            "Room lines never sent to the other nodes (publish queue full, Redis gone or failing).",
            c.dropped,
        ),
    ];
    for (name, kind, help, value) in families {
        simple(out, name, kind, help, value);
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP wschat_{name} {help}\n# TYPE wschat_{name} {kind}"
    );
}

fn simple(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "wschat_{name} {value}");
}

/// The round-duration histogram: cumulative buckets in seconds, `+Inf`, sum and count.
fn rounds(out: &mut String, s: &Snapshot) {
    let name = "wschat_round_duration_seconds";
    family(
        out,
        "round_duration_seconds",
        "histogram",
        "How long the broadcaster's rounds take (handling events, then writing).",
    );
    let mut cumulative = 0;
    for (bound_us, n) in ROUND_BUCKETS_US.iter().zip(&s.rounds.counts) {
        cumulative += n;
        let le = *bound_us as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += s.rounds.counts[ROUND_BUCKETS_US.len()];
    let sum = s.rounds.sum_us as f64 / 1e6;
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::HistoryFigures;
    use std::time::Duration;

    /// The value of the sample line that starts with `series ` (name and labels).
    fn sample(text: &str, series: &str) -> String {
        let prefix = format!("{series} ");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {series} in\n{text}"))[prefix.len()..].to_string()
    }

    #[test]
    fn every_figure_has_its_line() {
        let mut s = Snapshot {
            rooms: 2,
            messages: 5,
            ..Snapshot::default()
        };
        s.outbox.connections = [3, 1, 5, 4];
        s.outbox.backlog_drops = 7;
        s.drops[DropReason::Heartbeat as usize] = 2;
        let text = render(&s);
        assert_eq!(sample(&text, "wschat_connections{kind=\"chat\"}"), "3");
        assert_eq!(
            sample(&text, "wschat_connections{kind=\"socketio_websocket\"}"),
            "1"
        );
        assert_eq!(sample(&text, "wschat_connections{kind=\"echo\"}"), "4");
        assert_eq!(
            sample(&text, "wschat_connections{kind=\"socketio_polling\"}"),
            "5"
        );
        assert_eq!(sample(&text, "wschat_messages_total"), "5");
        assert_eq!(sample(&text, "wschat_rooms"), "2");
        assert_eq!(
            sample(&text, "wschat_dropped_clients_total{reason=\"backlog\"}"),
            "7"
        );
        assert_eq!(
            sample(&text, "wschat_dropped_clients_total{reason=\"heartbeat\"}"),
            "2"
        );
        assert!(
            !text.contains("cluster"),
            "no cluster figures without --redis"
        );
        s.cluster = Some(ClusterFigures {
            link_up: true,
            published: 11,
            received: 12,
            dropped: 13,
        });
        let text = render(&s);
        assert_eq!(sample(&text, "wschat_cluster_link_up"), "1");
        assert_eq!(sample(&text, "wschat_cluster_published_lines_total"), "11");
        assert_eq!(sample(&text, "wschat_cluster_received_lines_total"), "12");
        assert_eq!(sample(&text, "wschat_cluster_dropped_lines_total"), "13");
        assert!(
            !text.contains("history"),
            "no history figures without a file"
        );
        s.history = Some(HistoryFigures {
            waiting_lines: 21,
            left_out_lines: 22,
        });
        let text = render(&s);
        assert_eq!(sample(&text, "wschat_history_waiting_lines"), "21");
        assert_eq!(sample(&text, "wschat_history_left_out_lines_total"), "22");
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let mut s = Snapshot::default();
        for us in [10, 10, 300, 7_000_000] {
            s.rounds.observe(Duration::from_micros(us));
        }
        let text = render(&s);
        let bucket = |le: &str| {
            sample(
                &text,
                &format!("wschat_round_duration_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.00005"), "2");
        assert_eq!(bucket("0.0005"), "3");
        assert_eq!(bucket("5"), "3");
        assert_eq!(bucket("+Inf"), "4");
        assert_eq!(sample(&text, "wschat_round_duration_seconds_count"), "4");
        assert_eq!(
            sample(&text, "wschat_round_duration_seconds_sum"),
            "7.00032"
        );
    }
}
