//! [`Router`]: one handler per path pattern, with parameters (`/chat/{room}`), and 404 for
//! unknown paths before any upgrade (the idea of Python `websockets`' `route`).

use std::{fmt, future::Future, io, pin::Pin, str::FromStr, sync::Arc};

use http::StatusCode;

use crate::{
    connection::Connection,
    hooks::{RequestHook, respond},
    server::Server,
};

type BoxedHandler =
    Arc<dyn Fn(Connection) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Dispatches connections on their request path: `{name}` matches one non-empty path
/// segment, and a final `{*name}` matches the rest of the path (one or more characters,
/// slashes included). Routes are tried in the order they were added; the first that
/// matches wins. The query string plays no part. A request whose path no route matches is
/// answered with 404 before the upgrade.
///
/// Parameters are percent-decoded; the handler reads them with
/// [`Connection::path_param`] or the [`PathParams`] in the request's extensions. A path
/// whose parameter does not decode to UTF-8 is answered with 400.
///
/// Serve it with [`Server::serve_router`]. The router's check runs after the request hooks
/// of the builder (an unknown path without credentials gets 401, not 404).
///
/// ```no_run
/// use sockjet::{Router, Server};
/// # async fn f() -> std::io::Result<()> {
/// let router = Router::new()
///     .route("/chat/{room}", |ws: sockjet::Connection| async move {
///         let room = ws.path_param("room").unwrap_or_default().to_owned();
///         let _ = ws.send(format!("welcome to {room}")).await;
///     })
///     .route("/files/{*path}", |ws: sockjet::Connection| async move {
///         let _ = ws.send(ws.path_param("path").unwrap_or_default().to_owned()).await;
///     })
///     .route("/", |ws: sockjet::Connection| async move { drop(ws) });
/// Server::bind("127.0.0.1:8765").await?.serve_router(router).await
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

#[derive(Clone)]
struct Route {
    pattern: Pattern,
    handler: BoxedHandler,
}

impl Router {
    /// An empty router: every path gets 404.
    ///
    /// ```
    /// let _router = sockjet::Router::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route.
    ///
    /// # Panics
    ///
    /// If `pattern` does not start with `/`, has a `{` or `}` that is not a whole
    /// `{name}` segment, a parameter name used twice, or a `{*name}` that is not the last
    /// segment.
    ///
    /// ```
    /// let _router = sockjet::Router::new().route("/rooms/{room}/users/{user}", |ws| async move {
    ///     println!("{:?} {:?}", ws.path_param("room"), ws.path_param("user"));
    /// });
    /// ```
    pub fn route<H, F>(mut self, pattern: &str, handler: H) -> Self
    where
        H: Fn(Connection) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let pattern =
            Pattern::parse(pattern).unwrap_or_else(|why| panic!("route {pattern:?}: {why}"));
        self.routes.push(Route {
            pattern,
            handler: Arc::new(move |connection| Box::pin(handler(connection))),
        });
        self
    }

    /// Finds the route for `path`: its index and parameters, or the status that answers
    /// a path no route takes (400 for a parameter that is not UTF-8, else 404).
    fn find(&self, path: &str) -> Result<(usize, PathParams), StatusCode> {
        for (index, route) in self.routes.iter().enumerate() {
            match route.pattern.matches(path) {
                Match::No => {}
                Match::Yes(params) => return Ok((index, params)),
                Match::BadEncoding => return Err(StatusCode::BAD_REQUEST),
            }
        }
        Err(StatusCode::NOT_FOUND)
    }

    /// The request hook that routes: it records the route and parameters in the request,
    /// or answers 400 / 404.
    fn hook(self: &Arc<Self>) -> RequestHook {
        let router = self.clone();
        RequestHook::new(
            move |request, _peer| match router.find(request.uri().path()) {
                Ok((index, params)) => {
                    request.extensions_mut().insert(MatchedRoute(index));
                    request.extensions_mut().insert(params);
                    None
                }
                Err(StatusCode::BAD_REQUEST) => {
                    Some(respond(StatusCode::BAD_REQUEST, "invalid path encoding\n"))
                }
                Err(status) => Some(respond(status, "not found\n")),
            },
        )
    }

    /// Runs the handler of the connection's route. A connection that did not come
    /// through the router's hook (one accepted with
    /// [`ServerBuilder::accept`](crate::ServerBuilder::accept), say) is routed now; with no
    /// route it is closed with 1008 (policy violation), since 404 can no longer be sent.
    async fn dispatch(&self, connection: Connection) {
        let index = match connection.request().extensions().get::<MatchedRoute>() {
            Some(MatchedRoute(index)) => Some(*index),
            None => self.find(connection.path()).ok().map(|(index, _)| index),
        };
        match index.and_then(|index| self.routes.get(index)) {
            Some(route) => (route.handler)(connection).await,
            None => {
                let _ = connection
                    .close(sockjet_proto::CloseCode::POLICY_VIOLATION, "no route")
                    .await;
            }
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|route| &route.pattern.source))
            .finish()
    }
}

impl Server {
    /// Accepts connections forever, dispatching each to the handler of its route (see
    /// [`Router`]); unknown paths are answered with 404 before the upgrade.
    ///
    /// # Errors
    ///
    /// Returns only if accepting fails in a way that cannot be retried.
    ///
    /// ```no_run
    /// # async fn f() -> std::io::Result<()> {
    /// let router = sockjet::Router::new().route("/echo", |mut ws| async move {
    ///     while let Ok(Some(message)) = ws.recv().await {
    ///         let _ = ws.send(message).await;
    ///     }
    /// });
    /// sockjet::Server::bind("127.0.0.1:8765").await?.serve_router(router).await
    /// # }
    /// ```
    pub async fn serve_router(mut self, router: Router) -> io::Result<()> {
        let router = Arc::new(router);
        Arc::make_mut(&mut self.settings)
            .hooks
            .push_request(router.hook());
        self.serve(move |connection| {
            let router = router.clone();
            async move { router.dispatch(connection).await }
        })
        .await
    }
}

/// Which route matched; set by the router's hook.
#[derive(Clone, Copy, Debug)]
struct MatchedRoute(usize);

/// The parameters a [`Router`] pattern captured, percent-decoded, in the order of the
/// pattern; stored in the request's [`extensions`](http::Request::extensions).
///
/// ```no_run
/// # fn f(ws: &sockjet::Connection) {
/// use sockjet::router::PathParams;
/// let params = ws.request().extensions().get::<PathParams>().unwrap();
/// let room: Option<&str> = params.get("room");
/// let page: Option<Result<u32, _>> = params.parse::<u32>("page");
/// # }
/// ```
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct PathParams(Vec<(Arc<str>, String)>);

impl PathParams {
    /// The value of parameter `name`.
    ///
    /// ```
    /// let params = sockjet::router::PathParams::default();
    /// assert_eq!(params.get("room"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| &**key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of parameter `name` parsed as a `T`: `None` if there is no such
    /// parameter, `Some(Err(_))` if it does not parse.
    ///
    /// ```
    /// let params = sockjet::router::PathParams::default();
    /// assert!(params.parse::<u64>("id").is_none());
    /// ```
    pub fn parse<T: FromStr>(&self, name: &str) -> Option<Result<T, T::Err>> {
        self.get(name).map(str::parse)
    }

    /// Every parameter as `(name, value)`, in the order of the pattern.
    ///
    /// ```
    /// let params = sockjet::router::PathParams::default();
    /// assert_eq!(params.iter().count(), 0);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(key, value)| (&**key, value.as_str()))
    }
}

impl Connection {
    /// A path parameter captured by the [`Router`] (`room` for `/chat/{room}`),
    /// percent-decoded.
    ///
    /// ```no_run
    /// # fn f(ws: &sockjet::Connection) {
    /// let room = ws.path_param("room").unwrap_or("lobby");
    /// # }
    /// ```
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.request().extensions().get::<PathParams>()?.get(name)
    }
}

/// A parsed route pattern.
#[derive(Clone, Debug)]
struct Pattern {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(Arc<str>),
    /// `{*name}`: the rest of the path.
    Rest(Arc<str>),
}

enum Match {
    No,
    Yes(PathParams),
    BadEncoding,
}

impl Pattern {
    fn parse(source: &str) -> Result<Self, &'static str> {
        let Some(path) = source.strip_prefix('/') else {
            return Err("a pattern starts with /");
        };
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let parts: Vec<&str> = path.split('/').collect();
        for (position, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => {
                    let (rest, name) = match inner.strip_prefix('*') {
                        Some(name) => (true, name),
                        None => (false, inner),
                    };
                    if name.is_empty() || name.contains(['{', '}', '*']) {
                        return Err("invalid parameter name");
                    }
                    if names.contains(&name) {
                        return Err("a parameter name is used twice");
                    }
                    names.push(name);
                    if rest && position + 1 != parts.len() {
                        return Err("{*name} must be the last segment");
                    }
                    match rest {
                        true => Segment::Rest(name.into()),
                        false => Segment::Param(name.into()),
                    }
                }
                None if part.contains(['{', '}']) => {
                    return Err("a parameter must be a whole segment");
                }
                None => Segment::Literal((*part).to_owned()),
            };
            segments.push(segment);
        }
        Ok(Self {
            source: source.to_owned(),
            segments,
        })
    }

    fn matches(&self, path: &str) -> Match {
        let Some(mut rest) = path.strip_prefix('/') else {
            return Match::No;
        };
        let mut params = PathParams::default();
        let count = self.segments.len();
        for (position, segment) in self.segments.iter().enumerate() {
            let last = position + 1 == count;
            if let Segment::Rest(name) = segment {
                if rest.is_empty() {
                    return Match::No;
                }
                let Some(value) = decode(rest) else {
                    return Match::BadEncoding;
                };
                params.0.push((name.clone(), value));
                return Match::Yes(params);
            }
            let (part, next) = match rest.split_once('/') {
                Some((part, next)) if !last => (part, next),
                Some(_) => return Match::No,
                None if last => (rest, ""),
                None => return Match::No,
            };
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    let Some(value) = decode(part) else {
                        return Match::BadEncoding;
                    };
                    params.0.push((name.clone(), value));
                }
                _ => return Match::No,
            }
            rest = next;
        }
        Match::Yes(params)
    }
}

fn decode(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|value| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockjet_proto::Request;

    fn matched(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        match Pattern::parse(pattern).unwrap().matches(path) {
            Match::Yes(params) => Some(
                params
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            Match::No => None,
            Match::BadEncoding => Some(vec![("!".to_owned(), "bad".to_owned())]),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn literal_routes() {
        assert_eq!(matched("/", "/"), pairs(&[]));
        assert_eq!(matched("/", "/x"), None);
        assert_eq!(matched("/chat", "/chat"), pairs(&[]));
        assert_eq!(matched("/chat", "/chat/"), None);
        assert_eq!(matched("/chat/", "/chat/"), pairs(&[]));
        assert_eq!(matched("/chat", "/chatroom"), None);
    }

    #[test]
    fn parameters() {
        assert_eq!(
            matched("/chat/{room}", "/chat/lobby"),
            pairs(&[("room", "lobby")])
        );
        assert_eq!(matched("/chat/{room}", "/chat/"), None);
        assert_eq!(matched("/chat/{room}", "/chat/a/b"), None);
        assert_eq!(
            matched("/chat/{room}", "/chat/caf%C3%A9%20bar"),
            pairs(&[("room", "café bar")])
        );
        assert_eq!(
            matched("/a/{x}/b/{y}", "/a/1/b/2"),
            pairs(&[("x", "1"), ("y", "2")])
        );
        assert_eq!(matched("/chat/{room}", "/chat/%ff"), pairs(&[("!", "bad")]));
    }

    #[test]
    fn catch_all() {
        assert_eq!(
            matched("/files/{*path}", "/files/a/b.txt"),
            pairs(&[("path", "a/b.txt")])
        );
        assert_eq!(matched("/files/{*path}", "/files/"), None);
        assert_eq!(matched("/files/{*path}", "/files"), None);
        assert_eq!(
            matched("/{*all}", "/anything/at/all"),
            pairs(&[("all", "anything/at/all")])
        );
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "chat",
            "/chat/{}",
            "/chat/{a}{b}",
            "/x{a}",
            "/{*a}/b",
            "/{a}/{a}",
            "/{a",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn first_route_wins_and_unknown_paths_get_404() {
        let router = Router::new()
            .route("/chat/admin", |_| async {})
            .route("/chat/{room}", |_| async {});
        let route_of = |target: &str| {
            let request = Request::builder().uri(target).body(()).unwrap();
            router
                .find(request.uri().path())
                .map(|(index, _)| index)
                .ok()
        };
        assert_eq!(route_of("/chat/admin"), Some(0));
        assert_eq!(route_of("/chat/x?y=1"), Some(1));
        assert_eq!(router.find("/nope").unwrap_err(), StatusCode::NOT_FOUND);
        assert_eq!(
            router.find("/chat/%C3").unwrap_err(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn typed_parameters() {
        let Match::Yes(params) = Pattern::parse("/page/{n}").unwrap().matches("/page/42") else {
            panic!()
        };
        assert_eq!(params.parse::<u32>("n"), Some(Ok(42)));
        assert!(params.parse::<u8>("n").is_some_and(|n| n.is_ok()));
        assert!(params.parse::<u32>("m").is_none());
    }
}
