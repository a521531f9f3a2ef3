//! The request and transport options of `sockjet connect`: headers, origin,
//! subprotocols, TLS trust, proxy, Unix socket.

use std::path::PathBuf;

use clap::Args;
use sockjet::{
    ClientBuilder, Proxy,
    proto::http::{HeaderName, HeaderValue},
    tls::ClientTls,
};

use crate::{Failure, insecure};

/// Options of the opening handshake and of the way to the server.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Add a header to the opening handshake request; repeat for more.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        value_parser = parse_header,
        help_heading = "Request"
    )]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Send an Origin header, for servers that check it.
    #[arg(long, value_name = "ORIGIN", help_heading = "Request")]
    origin: Option<String>,
    /// Offer a subprotocol; repeat for more, in order of preference.
    #[arg(
        long = "subprotocol",
        value_name = "NAME",
        value_parser = parse_token,
        help_heading = "Request"
    )]
    subprotocols: Vec<String>,
    /// Do not check the server's TLS certificate (wss://). Anyone on the way can then read
    /// and change the connection: for test servers only.
    #[arg(long, conflicts_with = "ca_file", help_heading = "TLS")]
    insecure: bool,
    /// Trust the certificate authorities of this PEM file instead of the system's.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    ca_file: Option<PathBuf>,
    /// Connect through this proxy: http://[USER:PASSWORD@]HOST[:PORT] (CONNECT) or
    /// socks5h://[USER:PASSWORD@]HOST[:PORT]. By default the environment's proxy
    /// variables are used (https_proxy, http_proxy, all_proxy, no_proxy...).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "no_proxy",
        help_heading = "Network"
    )]
    proxy: Option<String>,
    /// Connect directly, ignoring proxy environment variables.
    #[arg(long, help_heading = "Network")]
    no_proxy: bool,
    /// Connect to this Unix socket; the URL still gives the Host header and the path.
    #[cfg(unix)]
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "proxy",
        help_heading = "Network"
    )]
    unix: Option<PathBuf>,
}

impl ClientArgs {
    /// Applies these options to `builder`.
    pub(crate) fn apply(&self, mut builder: ClientBuilder) -> Result<ClientBuilder, Failure> {
        for (name, value) in &self.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(origin) = &self.origin {
            builder = builder.origin(origin.as_str());
        }
        if !self.subprotocols.is_empty() {
            builder = builder.subprotocols(self.subprotocols.iter().cloned());
        }
        if self.insecure {
            eprintln!(
                "sockjet: warning: --insecure: the server's certificate is not checked; \
                 anyone on the way can read and change this connection"
            );
            builder = builder.tls(insecure::client_tls());
        }
        if let Some(path) = &self.ca_file {
            let tls = ClientTls::ca_file(path).map_err(|error| Failure::new(error.to_string()))?;
            builder = builder.tls(tls);
        }
        if let Some(url) = &self.proxy {
            let proxy = Proxy::parse(url).map_err(|error| {
                let why =
                    std::error::Error::source(&error).map_or(String::new(), ToString::to_string);
                Failure::new(format!("invalid --proxy: {why}"))
            })?;
            builder = builder.proxy(proxy);
        }
        if self.no_proxy {
            builder = builder.no_proxy();
        }
        #[cfg(unix)]
        if let Some(path) = &self.unix {
            builder = builder.unix_socket(path);
        }
        Ok(builder)
    }
}

/// Parses `Name: value`.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not NAME: VALUE"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("{:?} is not a valid header value", value.trim()))?;
    Ok((name, value))
}

/// Checks a subprotocol name: an HTTP token (RFC 6455 §4.1).
fn parse_token(text: &str) -> Result<String, String> {
    let is_token = !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    match is_token {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "{text:?} is not a valid subprotocol name (an HTTP token)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_as_name_colon_value() {
        let (name, value) = parse_header("X-Token:  a:b ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-token", "a:b"));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
        assert!(parse_header("x: line\nbreak").is_err());
    }

    #[test]
    fn subprotocols_are_tokens() {
        assert!(parse_token("v2.chat").is_ok());
        assert!(parse_token("two words").is_err());
        assert!(parse_token("").is_err());
    }
}
