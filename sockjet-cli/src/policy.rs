//! `sockjet serve` options for who may connect and how fast they may send: origins, HTTP
//! Basic credentials, a per-connection rate limit, and the `/healthz` answer.

use clap::Args;
use sockjet::{
    ConnectionConfig, RateLimit, ServerBuilder,
    auth::BasicAuth,
    hooks::respond,
    origin::{OriginPattern, OriginPolicy},
    proto::http::StatusCode,
};

/// Realm of the Basic challenge.
const REALM: &str = "sockjet";

/// Access control and rate limits of `sockjet serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Access")]
pub(crate) struct PolicyArgs {
    /// Only allow WebSocket connections whose Origin header is ORIGIN: an exact origin
    /// (https://example.com, http://localhost:8000) or a pattern for subdomains
    /// (https://*.example.com). Repeat for more. Others get 403. Without it, any origin
    /// is allowed.
    #[arg(long = "origin", value_name = "ORIGIN", value_parser = parse_origin)]
    origins: Vec<OriginPattern>,
    /// With --origin, also refuse requests that send no Origin header. By default they
    /// are allowed: browsers always send one, other clients usually none.
    #[arg(long, requires = "origins")]
    deny_no_origin: bool,
    /// Require HTTP Basic authentication as USER:PASS (the password may contain colons);
    /// repeat for more users. Others get 401. Use it over TLS or on loopback only.
    #[arg(long = "basic-auth", value_name = "USER:PASS", value_parser = parse_user_password)]
    basic_auth: Vec<(String, String)>,
    /// Close a connection with 1008 (policy violation) when it sends more than MSGS
    /// messages per second, or, with ",BYTES", more than BYTES bytes per second; bursts of
    /// one second's worth are allowed. `0` for MSGS limits bytes only: `0,65536`.
    #[arg(long, value_name = "MSGS[,BYTES]", value_parser = parse_rate_limit)]
    rate_limit: Option<RateLimit>,
}

impl PolicyArgs {
    /// Whether any origin, credential or rate-limit option was given.
    pub(crate) fn any(&self) -> bool {
        !self.origins.is_empty() || !self.basic_auth.is_empty() || self.rate_limit.is_some()
    }

    /// The connection options with the rate limit.
    pub(crate) fn connection(&self, config: ConnectionConfig) -> ConnectionConfig {
        config.rate_limit(self.rate_limit)
    }

    /// The builder with `/healthz`, then the origin check, then authentication. The health
    /// check comes first: probes send neither an Origin nor credentials.
    pub(crate) fn hooks(&self, builder: ServerBuilder) -> ServerBuilder {
        let mut builder = builder.process_request(|request, _peer| {
            (request.uri().path() == "/healthz").then(|| respond(StatusCode::OK, "ok\n"))
        });
        if !self.origins.is_empty() {
            let policy = self
                .origins
                .iter()
                .cloned()
                .fold(OriginPolicy::new(), OriginPolicy::allow_pattern)
                .allow_missing(!self.deny_no_origin);
            builder = builder.request_hook(policy);
        }
        if !self.basic_auth.is_empty() {
            let credentials = self.basic_auth.iter().cloned();
            builder = builder.request_hook(BasicAuth::credentials(REALM, credentials));
        }
        builder
    }
}

fn parse_origin(value: &str) -> Result<OriginPattern, String> {
    value.parse().map_err(|error| format!("{error}"))
}

fn parse_user_password(value: &str) -> Result<(String, String), String> {
    match value.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok((user.to_owned(), password.to_owned())),
        _ => Err("expected USER:PASS".to_owned()),
    }
}

/// Parses `MSGS[,BYTES]`.
fn parse_rate_limit(value: &str) -> Result<RateLimit, String> {
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a whole number (expected MSGS[,BYTES])"))
    };
    let (messages, bytes) = match value.split_once(',') {
        Some((messages, bytes)) => (number(messages)?, Some(number(bytes)?)),
        None => (number(value)?, None),
    };
    let mut limit = RateLimit::unlimited();
    if messages > 0 {
        limit = limit.messages(messages);
    }
    match bytes {
        Some(0) => return Err("BYTES must be more than 0".to_owned()),
        Some(bytes) => limit = limit.bytes_per_second(bytes),
        None if messages == 0 => return Err("nothing to limit: MSGS is 0".to_owned()),
        None => {}
    }
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            parse_rate_limit("100"),
            Ok(RateLimit::messages_per_second(100))
        );
        assert_eq!(
            parse_rate_limit("100,65536"),
            Ok(RateLimit::messages_per_second(100).bytes_per_second(65536))
        );
        assert_eq!(
            parse_rate_limit("0,1024"),
            Ok(RateLimit::unlimited().bytes_per_second(1024))
        );
        for bad in ["", "0", "x", "10,", "10,0", "-1", "1,2,3"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_parse() {
        assert_eq!(
            parse_user_password("ann:p:w"),
            Ok(("ann".to_owned(), "p:w".to_owned()))
        );
        assert!(parse_user_password("ann").is_err());
        assert!(parse_user_password(":pw").is_err());
    }

    #[test]
    fn origins_parse() {
        assert!(parse_origin("https://*.example.com").is_ok());
        assert!(parse_origin("example.com").is_err());
    }
}
