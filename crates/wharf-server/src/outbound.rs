//! The one HTTP client for requests made on a tenant's behalf (webhook deliveries, agents'
//! endpoints, and later media downloads), and its policy: the address a connection actually
//! uses, after DNS resolution, must be a public one, unless the operator allowed it
//! (`outbound_allow`).
//!
//! How every path is covered: the client is private to this module. A host written as an IP
//! address (in any spelling the URL parser turns into one: `127.1`, `2130706433`,
//! `0x7f000001`, `0177.0.0.1`, `[::ffff:127.0.0.1]`) is checked before the request is built,
//! because such hosts never reach a resolver; every other host is resolved by [`Guard`], the
//! client's DNS resolver, which refuses the name when any address it resolves to is refused,
//! so the addresses checked are the ones connected to (a DNS answer that changes between
//! registration and delivery cannot get past it). Redirects are not followed and no proxy is
//! used (a proxy would connect on our behalf to an address we never saw).

use std::{
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    pin::Pin,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
};

use crate::ServiceError;

/// How long a check at registration waits for DNS before giving up (and accepting the URL:
/// the connection is checked again anyway).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A range of addresses: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self {
            addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self {
            addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in this range (an IPv4 range never holds an IPv6 address: map first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        match addr {
            // `::ffff:10.0.0.0/104` is the IPv4 range `10.0.0.0/8`.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                let v4 = v6.to_ipv4_mapped().expect("checked");
                if prefix < 96 {
                    return Err(format!(
                        "`{text}`: an IPv4-mapped range needs a prefix of at least 96"
                    ));
                }
                Ok(Self {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                })
            }
            _ => Ok(Self { addr, prefix }),
        }
    }
}

/// Addresses never connected to unless allowed: not reachable on the public internet, or
/// meaningful only on the local network or host.
const REFUSED: &[Net] = &[
    Net::v4(0, 0, 0, 0, 8),                         // "this network", 0.0.0.0
    Net::v4(10, 0, 0, 0, 8),                        // private
    Net::v4(100, 64, 0, 0, 10),                     // shared address space (CGNAT)
    Net::v4(127, 0, 0, 0, 8),                       // loopback
    Net::v4(169, 254, 0, 0, 16), // link-local (cloud metadata at 169.254.169.254)
    Net::v4(172, 16, 0, 0, 12),  // private
    Net::v4(192, 0, 0, 0, 24),   // IETF protocol assignments
    Net::v4(192, 0, 2, 0, 24),   // documentation
    Net::v4(192, 88, 99, 0, 24), // 6to4 relay anycast (deprecated)
    Net::v4(192, 168, 0, 0, 16), // private
    Net::v4(198, 18, 0, 0, 15),  // benchmarking
    Net::v4(198, 51, 100, 0, 24), // documentation
    Net::v4(203, 0, 113, 0, 24), // documentation
    Net::v4(224, 0, 0, 0, 4),    // multicast
    Net::v4(240, 0, 0, 0, 4),    // reserved, and the broadcast address 255.255.255.255
    Net::v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, IPv4-compatible
    Net::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64
    Net::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    Net::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, …)
    Net::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    Net::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
    Net::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique-local
    Net::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    Net::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
    Net::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
];

/// `ip` with an IPv4 address embedded in IPv6 taken out: IPv4-mapped (`::ffff:a.b.c.d`), the
/// NAT64 well-known prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`), so each is
/// judged as the IPv4 address it reaches.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| {
        IpAddr::V4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ))
    };
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return embedded(s[6], s[7]);
    }
    if s[0] == 0x2002 {
        return embedded(s[1], s[2]);
    }
    ip
}

/// Whether `ip` is a public address (after taking out an embedded IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    !REFUSED.iter().any(|net| net.contains(ip))
}

/// The operator's exceptions (`outbound_allow`): host names, allowed whatever they resolve
/// to, and ranges of addresses.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    hosts: Vec<String>,
    nets: Vec<Net>,
}

impl Policy {
    /// Reads `outbound_allow`: each entry a host name, an IP address or a CIDR range.
    pub fn new(allow: &[String]) -> Result<Self, String> {
        let mut policy = Self::default();
        for entry in allow {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let unbracketed = entry.trim_start_matches('[').replace(']', "");
            if entry.contains('/') || unbracketed.parse::<IpAddr>().is_ok() {
                policy.nets.push(
                    unbracketed
                        .parse()
                        .map_err(|e| format!("outbound_allow: {e}"))?,
                );
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
            {
                policy
                    .hosts
                    .push(entry.trim_end_matches('.').to_ascii_lowercase());
            } else {
                return Err(format!(
                    "outbound_allow: `{entry}` is not a host name, IP address or CIDR range"
                ));
            }
        }
        Ok(policy)
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        let embedded = canonical(ip);
        is_public(ip)
            || self
                .nets
                .iter()
                .any(|n| n.contains(ip) || n.contains(embedded))
    }

    /// Whether the operator named the host `name` (then any address it resolves to is used).
    pub fn allows_name(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// Why a request was not made: the policy refused its address. Says nothing of the address,
/// so the tenant learns nothing about what is there.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("refused by the outbound policy (the address is not public)")]
pub struct Refused;

/// Resolves host names to addresses. The system's resolver in production; tests give their
/// own to play DNS answers (a name that resolves to loopback, an answer that changes).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The client's DNS resolver: the names' addresses, or [`Refused`] when any is refused.
struct Guard {
    policy: Arc<Policy>,
    lookup: Arc<dyn Lookup>,
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, lookup) = (self.policy.clone(), self.lookup.clone());
        Box::pin(async move {
            let host = name.as_str();
            let addrs = lookup.lookup(host).await?;
            if !policy.allows_name(host) && addrs.iter().any(|ip| !policy.allows_addr(*ip)) {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(
                addrs
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// The host of `url` when it is an IP address. The URL parser has already turned every
/// numeric spelling of an IPv4 address (`127.1`, `2130706433`, `0x7f000001`, `0177.0.0.1`)
/// into its dotted form, and writes IPv6 hosts in brackets.
fn ip_host(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// What became of a request.
#[derive(Debug)]
pub enum SendError {
    /// The policy refused the address: no connection was made.
    Refused,
    /// No answer within the time limit.
    Timeout,
    /// Anything else (connection refused, TLS, a malformed URL), as text.
    Failed(String),
}

/// The outbound client with its policy.
pub struct Outbound {
    policy: Arc<Policy>,
    lookup: Arc<dyn Lookup>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// A client allowing what `allow` names (see [`Policy::new`]), resolving with `lookup`
    /// (the system's when `None`).
    pub fn new(allow: &[String], lookup: Option<Arc<dyn Lookup>>) -> Result<Self, String> {
        let policy = Arc::new(Policy::new(allow)?);
        let lookup = lookup.unwrap_or_else(|| Arc::new(SystemLookup));
        let client = reqwest::Client::builder()
            // A redirect is an answer, not a delivery (and could lead anywhere).
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Guard {
                policy: policy.clone(),
                lookup: lookup.clone(),
            }))
            .build()
            .map_err(|e| format!("cannot build the outbound HTTP client: {e}"))?;
        Ok(Self {
            policy,
            lookup,
            client,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Checks a URL a tenant gives (`field` names it in the error): an http(s) URL whose
    /// host is not, and does not resolve to, a refused address. A name that cannot be
    /// resolved now is accepted; its connections are checked when they are made.
    pub async fn check_url(&self, field: &str, url: &str) -> Result<(), ServiceError> {
        let parsed = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                ServiceError::invalid(field, "must be an absolute http:// or https:// URL")
            })?;
        let refused = || {
            ServiceError::invalid_with(
                "url_not_allowed",
                field,
                "refused by the outbound policy: the host is, or resolves to, an address that is \
                 not public (loopback, private, link-local, …); the operator can allow it with \
                 outbound_allow",
            )
        };
        let host = parsed.host_str().unwrap_or_default();
        match ip_host(&parsed) {
            Some(ip) if !self.policy.allows_addr(ip) => Err(refused()),
            Some(_) => Ok(()),
            None if self.policy.allows_name(host) => Ok(()),
            None => match tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup.lookup(host)).await {
                Ok(Ok(addrs)) if addrs.iter().any(|ip| !self.policy.allows_addr(*ip)) => {
                    Err(refused())
                }
                _ => Ok(()),
            },
        }
    }

    /// A POST to `url`, or [`SendError::Refused`] when its host is a refused IP address
    /// (names are checked as they are resolved, by the client itself).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, SendError> {
        let parsed = Url::parse(url).map_err(|e| SendError::Failed(format!("bad URL: {e}")))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(SendError::Failed("the URL has no host".into()));
        }
        if ip_host(&parsed).is_some_and(|ip| !self.policy.allows_addr(ip)) {
            return Err(SendError::Refused);
        }
        Ok(self.client.post(parsed))
    }

    /// A GET of `url` (a media file a tenant gave), checked as [`Outbound::post`] is.
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, SendError> {
        let parsed = Url::parse(url).map_err(|e| SendError::Failed(format!("bad URL: {e}")))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(SendError::Failed("the URL has no host".into()));
        }
        if ip_host(&parsed).is_some_and(|ip| !self.policy.allows_addr(ip)) {
            return Err(SendError::Refused);
        }
        Ok(self.client.get(parsed))
    }

    /// Sends `request`, telling a refusal by the policy from other failures.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        request.send().await.map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(err) = source {
                // By type, or by text when a layer boxed it again.
                if err.is::<Refused>() || err.to_string() == Refused.to_string() {
                    return SendError::Refused;
                }
                source = err.source();
            }
            if e.is_timeout() {
                SendError::Timeout
            } else {
                SendError::Failed(format!("request failed: {e}"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_ip(url: &str) -> IpAddr {
        ip_host(&Url::parse(url).unwrap()).unwrap_or_else(|| panic!("{url}: not an IP host"))
    }

    #[test]
    fn every_spelling_of_a_refused_address_is_refused() {
        let policy = Policy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "http://0/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.31.255.255/",
            "http://192.168.0.1/",
            "http://100.64.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[ff02::1]/",
            "http://[2001:db8::1]/",
        ] {
            let ip = host_ip(url);
            assert!(!policy.allows_addr(ip), "{url} ({ip}) must be refused");
        }
        for url in [
            "http://93.184.215.14/",
            "http://8.8.8.8/",
            "http://[2606:4700::1111]/",
            "http://[64:ff9b::808:808]/",
            "http://[::ffff:8.8.8.8]/",
        ] {
            let ip = host_ip(url);
            assert!(policy.allows_addr(ip), "{url} ({ip}) is public");
        }
    }

    #[test]
    fn the_operator_allows_names_and_ranges() {
        let policy = Policy::new(&[
            "127.0.0.0/8".into(),
            "fd00::/8".into(),
            "[::1]".into(),
            "Receiver.Internal.".into(),
        ])
        .unwrap();
        assert!(policy.allows_addr("127.0.0.5".parse().unwrap()));
        assert!(policy.allows_addr("::ffff:127.0.0.5".parse().unwrap()));
        assert!(policy.allows_addr("fd00::7".parse().unwrap()));
        assert!(policy.allows_addr("::1".parse().unwrap()));
        assert!(!policy.allows_addr("10.0.0.1".parse().unwrap()));
        assert!(policy.allows_name("receiver.internal"));
        assert!(policy.allows_name("RECEIVER.internal."));
        assert!(!policy.allows_name("other.internal"));
        assert!(Policy::new(&["10.0.0.0/33".into()]).is_err());
        assert!(Policy::new(&["http://x".into()]).is_err());
        let mapped: Net = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
    }

    struct Fixed(Vec<IpAddr>);

    impl Lookup for Fixed {
        fn lookup(
            &self,
            _: &str,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'static>> {
            let addrs = self.0.clone();
            Box::pin(async move { Ok(addrs) })
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_refused_address_is_refused_at_connect_time() {
        crate::install_crypto();
        // Something listens there: the refusal must come before any connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lookup: Arc<dyn Lookup> = Arc::new(Fixed(vec![
            "93.184.215.14".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ]));
        let outbound = Outbound::new(&[], Some(lookup.clone())).unwrap();
        let url = format!("http://rebound.test:{port}/");
        let request = outbound.post(&url).map_err(|e| format!("{e:?}")).unwrap();
        let sent = outbound.send(request).await;
        assert!(matches!(sent, Err(SendError::Refused)), "{sent:?}");
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "no connection was made");
        let checked = outbound.check_url("target_url", &url).await.unwrap_err();
        assert!(checked.to_string().contains("target_url"), "{checked}");
        assert!(matches!(
            outbound.post(&format!("http://0x7f000001:{port}/")),
            Err(SendError::Refused)
        ));
        // Named by the operator, the same name goes through.
        let outbound = Outbound::new(&["rebound.test".into()], Some(lookup)).unwrap();
        outbound.check_url("target_url", &url).await.unwrap();
    }
}
