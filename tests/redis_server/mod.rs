//! Tests only: a `redis-server` of the test's own (Debian's package; `.ci/run` installs it) on
//! a free loopback port, for the cluster tests (tests/cluster.rs, tests/cluster_presence.rs).
#![allow(dead_code)] // each test file uses its own part of it

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use crate::common::eventually;

/// A `redis-server` of our own on a free loopback port, with no persistence; killed on drop.
pub struct Redis {
    pub child: Child,
    pub port: u16,
}

impl Redis {
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_with(free_port(), extra)
    }

    pub fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[])
    }

    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server; .ci/run installs it)");
        let redis = Redis { child, port };
        eventually("redis-server to accept connections", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain connection, to publish what another program might.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
