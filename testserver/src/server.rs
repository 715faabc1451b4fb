//! The HTTP side: the router, and an accept loop of our own on hyper (instead of `axum::serve`)
//! so that a handler can make its connection close without an answer (`DropConnection`).

use crate::state::Shared;
use crate::{control, gateway, routes};
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Uri};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tower_service::Service;

/// Lets a handler close its own connection (request extension).
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<Notify>);

/// The request target as it arrived (before trailing-slash normalisation), for the log.
#[derive(Clone)]
pub(crate) struct RawTarget(pub String);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    use routes::{artifacts, jobs, runners, trace};
    Router::new()
        .route("/api/v4/runners", post(runners::register).delete(runners::unregister))
        .route("/api/v4/runners/verify", post(runners::verify))
        .route("/api/v4/runners/managers", delete(runners::unregister_manager))
        .route("/api/v4/runners/reset_authentication_token", post(runners::reset_token))
        .route("/api/v4/jobs/request", post(jobs::request))
        .route("/api/v4/jobs/{id}", put(jobs::update))
        .route("/api/v4/jobs/{id}/trace", patch(trace::patch))
        .route("/api/v4/jobs/{id}/artifacts", post(artifacts::upload).get(artifacts::download))
        .route("/__storage/artifacts/{key}", get(artifacts::storage))
        .merge(control::routes())
        .fallback(not_found)
        // Bodies are buffered (with a limit) by the gateway; extractors must not cut them.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gateway::gateway))
        .with_state(shared)
}

async fn not_found() -> axum::response::Response {
    routes::common::message(404, "404 Not Found")
}

/// Bind with a large backlog: 100 clients connecting at once must not be refused.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

pub(crate) async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // E.g. EMFILE: back off briefly instead of spinning.
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, router.clone()));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let kill = Arc::new(Notify::new());
    let conn_kill = ConnKill(kill.clone());
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let target = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        if let Some(uri) = strip_trailing_slash(req.uri()) {
            *req.uri_mut() = uri;
        }
        req.extensions_mut().insert(conn_kill.clone());
        req.extensions_mut().insert(RawTarget(target));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
    }
}

/// `/api/v4/runners/` -> `/api/v4/runners` (GitLab's routes accept the trailing slash; the Python
/// package registers at `/api/v4/runners/`).
fn strip_trailing_slash(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !(path.starts_with("/api/v4/") && path.len() > "/api/v4/".len() && path.ends_with('/')) {
        return None;
    }
    let new = match uri.query() {
        Some(q) => format!("{}?{q}", path.trim_end_matches('/')),
        None => path.trim_end_matches('/').to_string(),
    };
    new.parse().ok()
}
