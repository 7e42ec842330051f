//! Static page: answers plain HTTP GET and HEAD requests with the files of `www/`.
//!
//! Owns the table of files embedded at build time (see `build.rs`) and the rules for mapping
//! a request path to a file: no directory listings, nothing outside the directory; and the
//! headers each page gets: the built-in page's strict Content-Security-Policy, and none for
//! pages from `--www DIR` (unless `--www-strict-csp`). Called by a client reader on a
//! connection that did not ask for a WebSocket; writes only that connection's HTTP response.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::http::{self, RequestHead};

include!(concat!(env!("OUT_DIR"), "/www_files.rs"));

/// The page asks for this script to learn whether wschat itself served it (then the
/// WebSocket is on the same origin). A plain static server sends the file from `www/`,
/// which says it did not.
const SERVER_CONFIG_PATH: &str = "config.js";

/// The `config.js` wschat serves: the WebSocket is on the page's own origin, and the page
/// learns the message size limit so it can refuse a long message before sending it.
fn server_config_js(max_message_bytes: usize) -> Vec<u8> {
    format!(
        "// Served by wschat: the chat's WebSocket is on this page's own origin.\n\
         window.WSCHAT_CONFIG = {{ servedByWschat: true, maxMessageBytes: {max_message_bytes} }};\n"
    )
    .into_bytes()
}

/// Keeps pages from inline scripts and foreign hosts: defence in depth should markup ever
/// reach a page. `ws:`/`wss:` stay open so `?ws=` can point anywhere.
const HTML_SECURITY_HEADERS: &str =
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'\r\n\
     Referrer-Policy: no-referrer\r\n";

/// The tutorial's socket.io page, written the usual way: an inline script and the client
/// library from a CDN. Its built-in copy gets a policy that allows exactly those (and
/// long-polling XHRs to `?server=`), so it runs without `--www`.
const SOCKETIO_PAGE: &str = "socketio.html";
const SOCKETIO_PAGE_HEADERS: &str = "Content-Security-Policy: default-src 'self'; \
     script-src 'self' 'unsafe-inline' https://cdnjs.cloudflare.com; \
     connect-src 'self' ws: wss: http: https:; img-src 'self' data:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'\r\n\
     Referrer-Policy: no-referrer\r\n";

/// The security headers of an HTML file. Pages from `--www DIR` are the user's own: they get
/// what any static server (`python3 -m http.server`) sends, no policy, so their inline
/// scripts and CDN scripts run; `--www-strict-csp` gives them the built-in page's instead.
fn html_headers(rel: &str, config: &Config) -> &'static str {
    match (&config.www_dir, rel) {
        (Some(_), _) if !config.www_strict_csp => "",
        (None, SOCKETIO_PAGE) => SOCKETIO_PAGE_HEADERS,
        _ => HTML_SECURITY_HEADERS,
    }
}

/// Answers one plain HTTP request; returns the status sent, for the log.
pub(crate) fn serve(stream: &TcpStream, head: &RequestHead, config: &Config) -> u16 {
    let send_body = match head.method.as_str() {
        "GET" => true,
        "HEAD" => false,
        _ => {
            let _ = http::write_error(stream, 405, "only GET and HEAD are served here");
            return 405;
        }
    };
    let Some(rel) = safe_relative_path(head.path()) else {
        let _ = http::write_error(stream, 404, "no such file");
        return 404;
    };
    let body = if rel == SERVER_CONFIG_PATH {
        Some(server_config_js(config.max_message_bytes))
    } else {
        match config.www_dir.as_deref() {
            Some(dir) => read_from_disk(dir, &rel),
            None => embedded(&rel).map(<[u8]>::to_vec),
        }
    };
    let Some(body) = body else {
        let _ = http::write_error(stream, 404, "no such file");
        return 404;
    };
    let content_type = content_type(&rel);
    let mut extra = String::from("Cache-Control: no-cache\r\n");
    if content_type.starts_with("text/html") {
        extra.insert_str(0, html_headers(&rel, config));
    }
    let _ = http::write_response(stream, 200, content_type, &extra, &body, send_body);
    200
}

/// Maps a request path to a relative file path, or `None` when it must be refused: bad
/// escapes, `..` or `.` segments (also when percent-encoded), backslashes, NUL bytes. A path
/// naming a directory (ending in `/`) means its `index.html`.
pub(crate) fn safe_relative_path(path: &str) -> Option<String> {
    let decoded = http::percent_decode(path, false)?;
    if !decoded.starts_with('/') || decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut parts = Vec::new();
    for seg in decoded.split('/').skip(1) {
        match seg {
            "" => continue,
            "." | ".." => return None,
            s if s.starts_with('.') => return None, // no dotfiles (.git, .env)
            s => parts.push(s),
        }
    }
    if decoded.ends_with('/') {
        parts.push("index.html");
    }
    Some(parts.join("/"))
}

fn embedded(rel: &str) -> Option<&'static [u8]> {
    EMBEDDED
        .binary_search_by(|(path, _)| (*path).cmp(rel))
        .ok()
        .map(|i| EMBEDDED[i].1)
}

/// Reads `rel` under `dir`, refusing anything whose real path (after symlinks) is outside it.
/// A directory is served as its `index.html`, never as a listing.
fn read_from_disk(dir: &Path, rel: &str) -> Option<Vec<u8>> {
    let root = dir.canonicalize().ok()?;
    let mut path: PathBuf = root.join(rel).canonicalize().ok()?;
    if !path.starts_with(&root) {
        return None;
    }
    if path.is_dir() {
        path = path.join("index.html").canonicalize().ok()?;
        if !path.starts_with(&root) {
            return None;
        }
    }
    fs::read(&path).ok()
}

/// The Content-Type for a file name, by extension.
pub(crate) fn content_type(rel: &str) -> &'static str {
    let ext = rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_inside_the_directory() {
        assert_eq!(safe_relative_path("/").as_deref(), Some("index.html"));
        assert_eq!(safe_relative_path("/chat.js").as_deref(), Some("chat.js"));
        assert_eq!(safe_relative_path("//a//b.css").as_deref(), Some("a/b.css"));
        assert_eq!(
            safe_relative_path("/sub/").as_deref(),
            Some("sub/index.html")
        );
        assert_eq!(safe_relative_path("/%63hat.js").as_deref(), Some("chat.js"));
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "/../Cargo.toml",
            "/a/../../x",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E%2fCargo.toml",
            "/..%5cCargo.toml",
            "/a\\..\\b",
            "/%00",
            "/./index.html",
            "/.git/config",
            "/%zz",
            "relative",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/chat.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }

    #[test]
    fn the_strict_policy_stays_on_the_built_in_page_only() {
        let built_in = Config::default();
        assert_eq!(html_headers("index.html", &built_in), HTML_SECURITY_HEADERS);
        assert!(html_headers(SOCKETIO_PAGE, &built_in).contains("'unsafe-inline'"));
        let www = Config {
            www_dir: Some("www".into()),
            ..Config::default()
        };
        assert_eq!(html_headers("index.html", &www), "");
        assert_eq!(html_headers(SOCKETIO_PAGE, &www), "");
        let strict = Config {
            www_strict_csp: true,
            ..www
        };
        assert_eq!(html_headers("index.html", &strict), HTML_SECURITY_HEADERS);
        assert_eq!(html_headers(SOCKETIO_PAGE, &strict), HTML_SECURITY_HEADERS);
    }

    #[test]
    fn the_embedded_page_is_complete() {
        for file in [
            "index.html",
            "chat.js",
            "chat.css",
            "config.js",
            SOCKETIO_PAGE,
        ] {
            assert!(
                embedded(file).is_some_and(|b| !b.is_empty()),
                "{file} is embedded"
            );
        }
        assert!(
            EMBEDDED.windows(2).all(|w| w[0].0 < w[1].0),
            "table is sorted"
        );
    }
}
