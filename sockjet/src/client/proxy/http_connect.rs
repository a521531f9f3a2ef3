//! HTTP CONNECT tunnels (RFC 9110 §9.3.6).

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{super::target::Target, Proxy, proxy_error};
use crate::error::{Error, ErrorKind};

/// Largest response head accepted from the proxy.
const MAX_HEAD: usize = 8 * 1024;

/// Asks the HTTP proxy on `stream` for a tunnel to `target`; on a 2xx answer the stream
/// is the tunnel.
pub(super) async fn tunnel(
    mut stream: TcpStream,
    proxy: &Proxy,
    target: &Target,
    user_agent: Option<&str>,
) -> Result<TcpStream, Error> {
    // RFC 9110 §9.3.6: "the request-target consists of only the host name and port
    // number of the tunnel destination, separated by a colon".
    let authority = target.host_port();
    let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(user_agent) = user_agent {
        request.push_str(&format!("User-Agent: {user_agent}\r\n"));
    }
    if let Some(credentials) = &proxy.credentials {
        let value = credentials.basic();
        let value = value.to_str().expect("Basic credentials are ASCII");
        request.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;

    let head = read_head(&mut stream, proxy).await?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = parse_status(status_line).ok_or_else(|| {
        proxy_error(
            ErrorKind::Handshake,
            format!("proxy {proxy} sent an invalid answer to CONNECT: {status_line:?}"),
        )
    })?;
    // RFC 9110 §9.3.6: "Any 2xx (Successful) response indicates that the sender (and all
    // inbound proxies) will switch to tunnel mode immediately after the response header
    // section".
    if (200..300).contains(&status) {
        return Ok(stream);
    }
    let reason = status_line
        .splitn(3, ' ')
        .nth(2)
        .unwrap_or_default()
        .trim()
        .escape_debug()
        .to_string();
    let hint = match status {
        407 if proxy.credentials.is_none() => {
            " (the proxy wants credentials: user:password@ in the proxy URL)"
        }
        407 => " (the proxy refused the credentials)",
        _ => "",
    };
    Err(proxy_error(
        ErrorKind::Handshake,
        format!("proxy {proxy} refused CONNECT {authority}: HTTP {status} {reason}{hint}"),
    ))
}

/// Reads the response head, byte by byte so that nothing of the tunnel is read with it.
async fn read_head(stream: &mut TcpStream, proxy: &Proxy) -> Result<String, Error> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(proxy_error(
                ErrorKind::Handshake,
                format!("proxy {proxy} sent a response head over {MAX_HEAD} bytes"),
            ));
        }
        let byte = stream.read_u8().await.map_err(|error| {
            Error::from(std::io::Error::new(
                error.kind(),
                format!("proxy {proxy} closed the connection during CONNECT: {error}"),
            ))
        })?;
        head.push(byte);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// The status code of `HTTP/1.x SSS reason`.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    (version.starts_with("HTTP/1.") && code.len() == 3)
        .then(|| code.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        assert_eq!(
            parse_status("HTTP/1.1 200 Connection established"),
            Some(200)
        );
        assert_eq!(
            parse_status("HTTP/1.0 407 Proxy Authentication Required"),
            Some(407)
        );
        assert_eq!(parse_status("HTTP/1.1 200"), Some(200));
        assert_eq!(parse_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status("HTTP/1.1 2000 x"), None);
    }
}
