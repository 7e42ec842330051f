//! The address to give people: the URLs at which a server bound to every interface (`0.0.0.0`
//! or `::`) can be reached from other machines, and a QR code of one for phones. It owns
//! the interface listing (the `if-addrs` crate) and the QR rendering (the `qrcode` crate);
//! it touches no socket, and nothing in the server depends on it (`main.rs` logs its URLs).

use std::net::{IpAddr, SocketAddr};

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// One address another machine can use: the interface it belongs to and its page URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUrl {
    /// The interface's name, e.g. `wlan0`, so a teacher can tell Wi-Fi from a VPN.
    pub interface: String,
    /// The page's URL on that address, e.g. `http://192.168.1.23:3000/`.
    pub url: String,
}

/// The URLs of this machine's non-loopback, non-link-local interface addresses at which a
/// listener on `local` can be reached, IPv4 first (what a classroom's Wi-Fi most likely
/// routes). Empty when `local` is not an unspecified address (then its own URL is the one
/// to give).
///
/// Bound to `0.0.0.0`, only IPv4 addresses are listed; bound to `::`, IPv6 ones too, and
/// IPv4 ones as well, since Linux's default (`net.ipv6.bindv6only` = 0) makes a `::`
/// listener dual-stack.
pub fn urls(local: SocketAddr) -> std::io::Result<Vec<ShareUrl>> {
    if !local.ip().is_unspecified() {
        return Ok(Vec::new());
    }
    // if-addrs leaves out link-local addresses (fe80::/10, 169.254/16) unless built with its
    // `link-local` feature: those need a zone or work on one link only.
    let interfaces = if_addrs::get_if_addrs()?;
    let found = interfaces.into_iter().map(|i| (i.name, i.addr.ip()));
    Ok(urls_from(local, found))
}

/// [`urls`] for a given interface list: the choosing and ordering, apart from the OS.
fn urls_from(
    local: SocketAddr,
    interfaces: impl IntoIterator<Item = (String, IpAddr)>,
) -> Vec<ShareUrl> {
    let with_v6 = local.is_ipv6();
    let mut chosen: Vec<(String, IpAddr)> = interfaces
        .into_iter()
        .filter(|(_, ip)| !ip.is_loopback() && !ip.is_unspecified())
        .filter(|(_, ip)| ip.is_ipv4() || with_v6)
        .collect();
    // Stable: the OS's order within each family.
    chosen.sort_by_key(|(_, ip)| ip.is_ipv6());
    chosen.dedup_by(|a, b| a.1 == b.1);
    let port = local.port();
    chosen
        .into_iter()
        .map(|(interface, ip)| ShareUrl {
            interface,
            url: format!("http://{}/", SocketAddr::new(ip, port)),
        })
        .collect()
}

/// `url` as a QR code drawn with Unicode half blocks (two modules per character), light
/// modules as blocks: it reads as dark-on-light on a terminal with a dark background, the
/// usual one, and phone cameras read it either way. Includes the quiet zone around it.
pub fn qr_code(url: &str) -> String {
    // Any URL fits: version 40 holds 2,953 bytes, and ours are about 30.
    let code = QrCode::new(url.as_bytes()).expect("a URL fits in a QR code");
    code.render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> (String, IpAddr) {
        (name.to_string(), ip.parse().unwrap())
    }

    fn machine() -> Vec<(String, IpAddr)> {
        vec![
            iface("lo", "127.0.0.1"),
            iface("lo", "::1"),
            iface("eth0", "fd00::2"),
            iface("eth0", "192.168.1.23"),
            iface("wlan0", "10.0.0.5"),
        ]
    }

    #[test]
    fn bound_to_every_ipv4_interface_lists_the_ipv4_addresses_but_loopback() {
        let urls = urls_from("0.0.0.0:3000".parse().unwrap(), machine());
        let got: Vec<_> = urls.iter().map(|u| (&*u.interface, &*u.url)).collect();
        assert_eq!(
            got,
            [
                ("eth0", "http://192.168.1.23:3000/"),
                ("wlan0", "http://10.0.0.5:3000/")
            ]
        );
    }

    #[test]
    fn bound_to_every_ipv6_interface_lists_both_families_ipv4_first() {
        let urls = urls_from("[::]:8080".parse().unwrap(), machine());
        let got: Vec<_> = urls.iter().map(|u| &*u.url).collect();
        assert_eq!(
            got,
            [
                "http://192.168.1.23:8080/",
                "http://10.0.0.5:8080/",
                "http://[fd00::2]:8080/"
            ]
        );
    }

    #[test]
    fn bound_to_one_address_lists_nothing() {
        assert!(urls("127.0.0.1:3000".parse().unwrap()).unwrap().is_empty());
        assert!(urls("192.168.1.23:3000".parse().unwrap())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_qr_code_is_half_blocks_with_a_quiet_zone() {
        let qr = qr_code("http://192.168.1.23:3000/");
        let lines: Vec<&str> = qr.lines().collect();
        // Version 2 (25 modules) plus a 4-module quiet zone each side: 33 wide, 17 rows.
        assert_eq!(lines[0].chars().count(), 33);
        assert_eq!(lines.len(), 17);
        assert!(lines[0].chars().all(|c| c == '█'), "quiet zone: {qr}");
        assert!(qr.contains('▀') && qr.contains('▄'));
    }
}
