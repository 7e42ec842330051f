//! The one JSON line a run prints: flat keys, so that shell and Python tools read it easily.

use std::fmt::Write;

use crate::load::{Options, Report};

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds a JSON object from `(key, already-encoded value)` pairs.
struct Obj(String);

impl Obj {
    fn new() -> Self {
        Obj(String::from("{"))
    }
    fn raw(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{}", quote(key), value);
        self
    }
    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.raw(key, quote(value))
    }
    fn num(&mut self, key: &str, value: f64) -> &mut Self {
        if value.is_finite() {
            self.raw(
                key,
                format!("{:.3}", value)
                    .trim_end_matches('0')
                    .trim_end_matches('.'),
            )
        } else {
            self.raw(key, "null")
        }
    }
    fn finish(&mut self) -> String {
        self.0.push('}');
        std::mem::take(&mut self.0)
    }
}

/// The report as one line of JSON. `tags` (from `--tag key=value`) come first, as strings.
pub fn json_line(opts: &Options, r: &Report, tags: &[(String, String)]) -> String {
    let mut o = Obj::new();
    for (k, v) in tags {
        o.str(k, v);
    }
    let secs = opts.duration.as_secs_f64();
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let recipients = r.recipients_per_message;
    let lat = &r.latency;
    o.str("target", &format!("ws://{}{}", opts.host, opts.path))
        .raw("clients", opts.clients)
        .raw("senders", opts.senders)
        .num("rate_per_sender", opts.rate)
        .raw("size", opts.size)
        .num("duration_s", secs)
        .raw("threads", opts.threads)
        .raw("echo_to_sender", opts.echo_to_sender)
        .raw("connected", r.connected)
        .raw("open_at_start", r.open_at_start)
        .raw("open_at_end", r.open_at_end)
        .raw("connect_failures", r.connect_failures)
        .str(
            "first_connect_error",
            r.first_connect_error.as_deref().unwrap_or(""),
        )
        .num("connect_s", r.connect_s)
        .num("settle_s", r.settle_s)
        .num("drain_s", r.drain_s)
        .num("offered_msgs_per_s", opts.rate * opts.senders as f64)
        .num(
            "offered_deliveries_per_s",
            opts.rate * opts.senders as f64 * recipients as f64,
        )
        .raw("sent", r.sent)
        .num("sent_msgs_per_s", per_s(r.sent))
        .raw("expected_deliveries", r.expected)
        .raw("delivered", r.delivered)
        .num("deliveries_per_s", per_s(r.delivered_in_window))
        .raw("lost", r.lost())
        .raw("out_of_order", r.out_of_order)
        .raw("foreign_markers", r.foreign_markers)
        .raw("frames", r.frames)
        .raw("bytes_in", r.bytes)
        .raw("closed_by_server", r.closed_by_server)
        .raw("protocol_errors", r.protocol_errors)
        .raw("p50_us", lat.percentile(50.0))
        .raw("p90_us", lat.percentile(90.0))
        .raw("p99_us", lat.percentile(99.0))
        .raw("p999_us", lat.percentile(99.9))
        .raw("max_us", lat.max())
        .num("mean_us", lat.mean())
        .raw("send_lag_max_us", r.send_lag_max_us)
        .raw("send_backlog_max_bytes", r.send_backlog_max_bytes)
        .num("gen_cpu_pct", r.gen_cpu_pct)
        .num("gen_worker_cpu_pct_max", r.gen_worker_cpu_pct_max);
    if !opts.more_addrs.is_empty() {
        let cross = &r.cross_latency;
        o.raw("cross_deliveries", cross.count())
            .raw("cross_p50_us", cross.percentile(50.0))
            .raw("cross_p99_us", cross.percentile(99.0));
    }
    if let Some(load) = crate::procstat::load_average() {
        o.num("loadavg_1m", load);
    }
    if let Some(pid) = opts.server_pid {
        o.raw("server_pid", pid);
    }
    if let Some(idle) = r.server_idle {
        o.raw("server_rss_kib_idle", idle.rss_kib);
    }
    if let (Some(a), Some(b)) = (r.server_start, r.server_end) {
        let cpu = b.cpu_us.saturating_sub(a.cpu_us);
        let wall = opts.duration.as_secs_f64() + r.drain_s;
        o.raw("server_cpu_us", cpu)
            .num("server_cpu_pct", cpu as f64 / (wall * 1e4))
            .num(
                "server_cpu_us_per_delivery",
                if r.delivered > 0 {
                    cpu as f64 / r.delivered as f64
                } else {
                    f64::NAN
                },
            )
            .raw("server_rss_kib_end", b.rss_kib)
            .raw("server_hwm_kib", b.hwm_kib)
            .raw(
                "server_minor_faults",
                b.minor_faults.saturating_sub(a.minor_faults),
            );
    }
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_strings() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn numbers_are_trimmed() {
        let mut o = Obj::new();
        o.num("a", 2.5).num("b", 3.0).num("c", f64::NAN).raw("d", 7);
        assert_eq!(o.finish(), r#"{"a":2.5,"b":3,"c":null,"d":7}"#);
    }
}
