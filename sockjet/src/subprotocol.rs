//! Subprotocol negotiation on the server (RFC 6455 §1.9, §4.2.2), with Python
//! `websockets`' rules: the server's list in order of preference, or a selection function.

use std::{fmt, sync::Arc};

use http::{HeaderValue, StatusCode, header};
use sockjet_proto::{Request, Response};

use crate::{hooks::respond, server::ServerBuilder};

type SelectFn = dyn Fn(&Request, &[&str]) -> Option<String> + Send + Sync;

/// What the server supports, and how it picks.
#[derive(Clone, Default)]
pub(crate) struct SubprotocolPolicy {
    available: Vec<String>,
    select: Option<Arc<SelectFn>>,
}

impl fmt::Debug for SubprotocolPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubprotocolPolicy")
            .field("available", &self.available)
            .field("select", &self.select.is_some())
            .finish()
    }
}

impl SubprotocolPolicy {
    /// Adds the chosen subprotocol to a 101 response, or turns it into the error that
    /// refuses the handshake.
    /// Whether subprotocols are offered or chosen at all.
    pub(crate) fn is_configured(&self) -> bool {
        !self.available.is_empty() || self.select.is_some()
    }

    pub(crate) fn negotiate(&self, request: &Request, mut response: Response) -> Response {
        if !self.is_configured() {
            // Nothing configured: no subprotocol, whatever the client offers (RFC 6455
            // §4.2.2: "the server [...] MAY choose not to send" one).
            return response;
        }
        let Some(offered) = offered(request) else {
            return respond(
                StatusCode::BAD_REQUEST,
                "invalid Sec-WebSocket-Protocol header\n",
            );
        };
        let chosen = match &self.select {
            Some(select) => {
                let selected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    select(request, &offered)
                }));
                let Ok(chosen) = selected else {
                    tracing::error!("the subprotocol selection function panicked; answering 500");
                    return respond(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n");
                };
                // RFC 6455 §4.2.2: the value "MUST be derived from the client's handshake,
                // specifically by selecting one of the values from the
                // |Sec-WebSocket-Protocol| field". Anything else is a bug in the selection
                // function; a client would fail the connection anyway.
                if let Some(choice) = &chosen {
                    if !offered.contains(&choice.as_str()) {
                        tracing::error!(
                            subprotocol = %choice,
                            "the subprotocol selection function chose a subprotocol the client did not offer"
                        );
                        return respond(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal server error\n",
                        );
                    }
                }
                chosen
            }
            None => match self.default_choice(&offered) {
                Ok(choice) => Some(choice.to_owned()),
                Err(why) => return respond(StatusCode::BAD_REQUEST, &why),
            },
        };
        if let Some(choice) = chosen.and_then(|choice| HeaderValue::from_str(&choice).ok()) {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, choice);
        }
        response
    }

    /// Python `websockets`' default: the first subprotocol of the server's list that the
    /// client offers; a client that offers none, or none of these, gets 400 with the
    /// reason returned here.
    fn default_choice<'a>(&'a self, offered: &[&str]) -> Result<&'a str, String> {
        if offered.is_empty() {
            return Err("missing subprotocol\n".to_owned());
        }
        self.available
            .iter()
            .find(|supported| offered.contains(&supported.as_str()))
            .map(String::as_str)
            .ok_or_else(|| {
                let expected = self.available.join(", ");
                format!("invalid subprotocol; expected one of {expected}\n")
            })
    }
}

/// The subprotocols a request offers, in its order, from every `Sec-WebSocket-Protocol`
/// header (a comma-separated list of tokens, RFC 6455 §4.1 and §11.3.4). `None` if a value
/// is not a list of tokens.
fn offered(request: &Request) -> Option<Vec<&str>> {
    let mut offered = Vec::new();
    for value in request.headers().get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let value = value.to_str().ok()?;
        for item in value.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                // RFC 9110 §5.6.1: empty list elements are ignored.
                continue;
            }
            if !is_token(item) {
                return None;
            }
            offered.push(item);
        }
    }
    Some(offered)
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

impl ServerBuilder {
    /// Sets the subprotocols the server supports, in order of preference.
    ///
    /// Without a [selection function](Self::select_subprotocol), the server picks the
    /// first of these that the client offers, as Python `websockets` does; a client that
    /// offers no subprotocol, or none of these, is refused with 400. To accept such
    /// clients without a subprotocol, set a selection function instead. With no
    /// subprotocols configured (the default), the server never answers with one.
    ///
    /// # Panics
    ///
    /// If a subprotocol is not an HTTP token (RFC 6455 §4.1).
    ///
    /// ```
    /// let _builder = sockjet::Server::builder().subprotocols(["chat.v2", "chat.v1"]);
    /// ```
    pub fn subprotocols<I, S>(mut self, subprotocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let available: Vec<String> = subprotocols.into_iter().map(Into::into).collect();
        for subprotocol in &available {
            assert!(
                is_token(subprotocol),
                "subprotocol {subprotocol:?} is not an HTTP token"
            );
        }
        self.hooks.subprotocols.available = available;
        self
    }

    /// Sets a function that picks the subprotocol from the client's offers (in the
    /// client's order; empty if it offered none), replacing the default choice of
    /// [`subprotocols`](Self::subprotocols). It sees the request as the request hooks left
    /// it (with an authenticated [`Identity`](crate::auth::Identity), say). `None`
    /// continues without a subprotocol; to refuse a client, answer in a request hook.
    ///
    /// RFC 6455 §4.2.2: the server may only answer with one of the client's offers. A
    /// choice that was not offered is a bug: it is logged and answered with 500.
    ///
    /// ```
    /// let _builder = sockjet::Server::builder().select_subprotocol(|_request, offered| {
    ///     // Prefer the newest version the client speaks; accept clients that speak none.
    ///     ["chat.v2", "chat.v1"]
    ///         .into_iter()
    ///         .find(|supported| offered.contains(supported))
    ///         .map(str::to_owned)
    /// });
    /// ```
    pub fn select_subprotocol<F>(mut self, select: F) -> Self
    where
        F: Fn(&Request, &[&str]) -> Option<String> + Send + Sync + 'static,
    {
        self.hooks.subprotocols.select = Some(Arc::new(select));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(offers: &[&str]) -> Request {
        let mut builder = Request::builder();
        for offer in offers {
            builder = builder.header(header::SEC_WEBSOCKET_PROTOCOL, *offer);
        }
        builder.body(()).unwrap()
    }

    fn switching() -> Response {
        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
    }

    fn chosen(policy: &SubprotocolPolicy, offers: &[&str]) -> Result<Option<String>, u16> {
        let response = policy.negotiate(&request(offers), switching());
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(response.status().as_u16());
        }
        Ok(response
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .map(|value| value.to_str().unwrap().to_owned()))
    }

    fn available(list: &[&str]) -> SubprotocolPolicy {
        SubprotocolPolicy {
            available: list.iter().map(|s| (*s).to_owned()).collect(),
            select: None,
        }
    }

    #[test]
    fn server_preference_wins() {
        let policy = available(&["b", "a"]);
        assert_eq!(chosen(&policy, &["a, b"]), Ok(Some("b".to_owned())));
        assert_eq!(chosen(&policy, &["a", "c"]), Ok(Some("a".to_owned())));
    }

    #[test]
    fn missing_or_unmatched_offers_are_refused() {
        let policy = available(&["chat"]);
        assert_eq!(chosen(&policy, &[]), Err(400));
        assert_eq!(chosen(&policy, &["other"]), Err(400));
        assert_eq!(chosen(&policy, &["chat;v=1"]), Err(400));
        assert_eq!(chosen(&policy, &[" , chat ,"]), Ok(Some("chat".to_owned())));
    }

    #[test]
    fn nothing_configured_means_no_subprotocol() {
        assert_eq!(chosen(&SubprotocolPolicy::default(), &["chat"]), Ok(None));
    }

    #[test]
    fn selection_must_pick_an_offer() {
        let policy = SubprotocolPolicy {
            available: Vec::new(),
            select: Some(Arc::new(|_, _| Some("unoffered".to_owned()))),
        };
        assert_eq!(chosen(&policy, &["chat"]), Err(500));
        let policy = SubprotocolPolicy {
            available: Vec::new(),
            select: Some(Arc::new(|_, offered| {
                offered.last().map(|s| (*s).to_owned())
            })),
        };
        assert_eq!(chosen(&policy, &["a, b"]), Ok(Some("b".to_owned())));
        assert_eq!(chosen(&policy, &[]), Ok(None));
    }
}
